package workflows

import (
	"context"
	"errors"
	"sync"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
)

// BatchLimit is the most visits one batch request may create.
const BatchLimit = 10000

// batchWorkers bounds the creates of one batch that run at once.
const batchWorkers = 32

// BatchItem is the outcome for one item of a batch create.
type BatchItem struct {
	Index   int          `json:"index"`
	Status  int          `json:"status"` // 201 created, 200 existing, 400 invalid, 409 conflict, 503
	Visit   *visit.Visit `json:"-"`
	Err     error        `json:"-"`
	Created bool         `json:"-"`
}

// CreateVisits creates each input as CreateVisit would, concurrently, and
// returns one result per input in input order; a failing item does not stop
// the others.
func (e *Engine) CreateVisits(ctx context.Context, ins []CreateInput) []BatchItem {
	out := make([]BatchItem, len(ins))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(batchWorkers, len(ins)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = e.createItem(ctx, i, ins[i])
			}
		}()
	}
	for i := range ins {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// createItem creates one batch item. It recovers a panic: these goroutines
// are outside the HTTP server's recovery, and an unrecovered panic in one
// would end the whole process (web, workers and scheduler).
func (e *Engine) createItem(ctx context.Context, i int, in CreateInput) (item BatchItem) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("panic creating a batch item", zap.Int("index", i), zap.Any("panic", p), zap.Stack("stack"))
			item = BatchItem{Index: i, Err: ErrInternal, Status: 500}
		}
	}()
	v, created, err := e.CreateVisit(ctx, in)
	return BatchItem{Index: i, Visit: v, Err: err, Created: created, Status: batchStatus(created, err)}
}

func batchStatus(created bool, err error) int {
	var in *InputError
	switch {
	case err == nil && created:
		return 201
	case err == nil:
		return 200
	case errors.As(err, &in):
		return 400
	case errors.Is(err, ErrConflict):
		return 409
	}
	return 503
}

package workflows

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/panics"
	"github.com/visitflow/visitflow/internal/visit"
)

// BatchLimit is the most visits one batch request may create.
const BatchLimit = 10000

// batchWorkers bounds the creates of one batch that run at once when the
// store cannot pipeline them (createEach).
const batchWorkers = 32

// A batch is created in chunks of batchChunk visits, batchChunkWorkers
// chunks at once; each step of a chunk (read existing, reserve PINs,
// create, acknowledge the outbox, remember phones) is one pipelined round
// trip for the whole chunk, where a create alone makes about ten.
const (
	batchChunk        = 500
	batchChunkWorkers = 4
	// batchSenders bounds the Asynq enqueues of one chunk in flight.
	batchSenders = 32
)

// BatchItem is the outcome for one item of a batch create.
type BatchItem struct {
	Index   int          `json:"index"`
	Status  int          `json:"status"` // 201 created, 200 existing, 400 invalid, 409 conflict, 503
	Visit   *visit.Visit `json:"-"`
	Err     error        `json:"-"`
	Created bool         `json:"-"`
}

// batchStore is what the pipelined batch create needs beyond Store
// (implemented by *store.Store); on a Store without it a batch is created
// item by item.
type batchStore interface {
	// GetEach reads visits by id; a missing one is nil.
	GetEach(ctx context.Context, ids []string) ([]*visit.Visit, error)
	ReservePINs(ctx context.Context, pins, ids []string, holds []time.Duration) ([]bool, error)
	// CreateMany is Create for each visit.
	CreateMany(ctx context.Context, vs []*visit.Visit) (stored []*visit.Visit, created []bool, errs []error)
	acksStore
	RememberPatientPhones(ctx context.Context, hashes []string, holds []time.Duration) error
}

// CreateVisits creates each input as CreateVisit would and returns one
// result per input in input order; a failing item does not stop the
// others.
func (e *Engine) CreateVisits(ctx context.Context, ins []CreateInput) []BatchItem {
	out := make([]BatchItem, len(ins))
	bs, ok := e.store.(batchStore)
	if !ok {
		all := make([]int, len(ins))
		for i := range all {
			all[i] = i
		}
		e.createEach(ctx, ins, all, out)
		return out
	}
	next := make(chan []int)
	var wg sync.WaitGroup
	for w := 0; w < min(batchChunkWorkers, (len(ins)+batchChunk-1)/batchChunk); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idx := range next {
				e.createChunk(ctx, bs, ins, idx, out)
			}
		}()
	}
	for from := 0; from < len(ins); from += batchChunk {
		idx := make([]int, 0, batchChunk)
		for i := from; i < min(from+batchChunk, len(ins)); i++ {
			idx = append(idx, i)
		}
		next <- idx
	}
	close(next)
	wg.Wait()
	return out
}

// createEach creates the items idx of ins one by one, batchWorkers at once.
func (e *Engine) createEach(ctx context.Context, ins []CreateInput, idx []int, out []BatchItem) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(batchWorkers, len(idx)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = e.createItem(ctx, i, ins[i])
			}
		}()
	}
	for _, i := range idx {
		next <- i
	}
	close(next)
	wg.Wait()
}

// createItem creates one batch item. It recovers a panic: these goroutines
// are outside the HTTP server's recovery, and an unrecovered panic in one
// would end the whole process (web, workers and scheduler).
func (e *Engine) createItem(ctx context.Context, i int, in CreateInput) (item BatchItem) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("panic creating a batch item", zap.Int("index", i), zap.String("panic", panics.Describe(p)), zap.Stack("stack"))
			item = BatchItem{Index: i, Err: ErrInternal, Status: 500}
		}
	}()
	v, created, err := e.CreateVisit(ctx, in)
	return itemOf(i, v, created, err)
}

func itemOf(i int, v *visit.Visit, created bool, err error) BatchItem {
	return BatchItem{Index: i, Visit: v, Err: err, Created: created, Status: batchStatus(created, err)}
}

// pending is a chunk's item on its way to being created.
type pending struct {
	i    int
	v    *visit.Visit
	sum  requestSum
	pin  string
	jobs []visit.Job
}

// createChunk creates the items idx of ins as CreateVisit would, each step
// pipelined for all of them. An item whose id appears earlier in the
// chunk is created after the chunk, as its own create. A panic (a bug)
// fails no item: the PINs of visits not stored go back and the items not
// settled yet are created one by one, each with createItem's recovery.
func (e *Engine) createChunk(ctx context.Context, bs batchStore, ins []CreateInput, idx []int, out []BatchItem) {
	var ps []pending
	var later []int
	settled := make(map[int]bool, len(idx))
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("panic creating a batch chunk; creating its items one by one", zap.String("panic", panics.Describe(p)), zap.Stack("stack"))
			for _, p := range ps {
				if p.pin != "" && !settled[p.i] {
					if _, err := e.store.Get(ctx, p.v.ID); errors.Is(err, visit.ErrNotFound) {
						e.releasePIN(p.pin, p.v.ID)
					}
				}
			}
			var rest []int
			for _, i := range idx {
				if !settled[i] {
					rest = append(rest, i)
				}
			}
			e.createEach(ctx, ins, rest, out)
			return
		}
		e.createEach(ctx, ins, later, out)
	}()
	settle := func(i int, v *visit.Visit, created bool, err error) {
		out[i] = itemOf(i, v, created, err)
		settled[i] = true
	}
	seen := make(map[string]bool, len(idx))
	for _, i := range idx {
		in := ins[i]
		if in.ID != "" && seen[in.ID] {
			later = append(later, i) // by createEach, after the chunk
			continue
		}
		v, sum, err := e.newVisit(ctx, in)
		if err != nil {
			settle(i, nil, false, err)
			continue
		}
		seen[v.ID] = true
		ps = append(ps, pending{i: i, v: v, sum: sum})
	}
	if len(ps) == 0 {
		return
	}
	ids := make([]string, len(ps))
	for k, p := range ps {
		ids[k] = p.v.ID
	}
	existing, err := bs.GetEach(ctx, ids)
	if err != nil {
		for _, p := range ps {
			settle(p.i, nil, false, err)
		}
		return
	}
	fresh := ps[:0]
	for k, p := range ps {
		if existing[k] != nil {
			v, created, err := e.sameOrConflict(existing[k], p.sum)
			settle(p.i, v, created, err)
			continue
		}
		fresh = append(fresh, p)
	}
	ps = fresh
	if err := e.reservePINs(ctx, bs, ps); err != nil {
		for _, p := range ps {
			if p.pin != "" {
				e.releasePIN(p.pin, p.v.ID)
			}
			settle(p.i, nil, false, err)
		}
		return
	}
	vs := make([]*visit.Visit, len(ps))
	for k := range ps {
		ps[k].jobs = e.scheduleNew(ps[k].v, ps[k].pin)
		vs[k] = ps[k].v
	}
	stored, created, errs := bs.CreateMany(ctx, vs)
	var made []pending
	for k, p := range ps {
		switch {
		case errs[k] != nil:
			e.releasePIN(p.pin, p.v.ID)
			settle(p.i, nil, false, errs[k])
		case !created[k]: // another create of that id got there first
			e.releasePIN(p.pin, p.v.ID)
			v, c, err := e.sameOrConflict(stored[k], p.sum)
			settle(p.i, v, c, err)
		default:
			settle(p.i, stored[k], true, nil)
			made = append(made, p)
		}
	}
	e.flushMany(ctx, bs, made)
	e.rememberPatientPhones(ctx, bs, made)
}

// reservePINs gives each of ps a free PIN, drawing again for those whose
// PIN another visit holds, each round one pipelined SET NX per PIN still
// wanted.
func (e *Engine) reservePINs(ctx context.Context, bs batchStore, ps []pending) error {
	want := make([]int, len(ps))
	for k := range want {
		want[k] = k
	}
	now := e.clock.Now()
	for try := 0; try < pinTries && len(want) > 0; try++ {
		pins, ids, holds := make([]string, len(want)), make([]string, len(want)), make([]time.Duration, len(want))
		for n, k := range want {
			pin, err := e.newPIN()
			if err != nil {
				return err
			}
			pins[n], ids[n], holds[n] = pin, ps[k].v.ID, pinHold(ps[k].v, now)
		}
		ok, err := bs.ReservePINs(ctx, pins, ids, holds)
		if err != nil {
			return err
		}
		var again []int
		for n, k := range want {
			if ok[n] {
				ps[k].pin = pins[n]
			} else {
				again = append(again, k)
			}
		}
		want = again
	}
	if len(want) > 0 {
		return errors.New("workflows: no free dial-in PIN")
	}
	return nil
}

// flushMany is flush for the visits a chunk created: their jobs go to
// Asynq batchSenders at a time (send's rule holds: a task ID already taken
// was sent before, anything else that fails stays in the outbox for the
// sweeper), then every visit's outbox is acknowledged in one pipeline.
func (e *Engine) flushMany(ctx context.Context, bs batchStore, made []pending) {
	type job struct{ k, n int }
	var jobs []job
	for k, p := range made {
		for n := range p.jobs {
			jobs = append(jobs, job{k, n})
		}
	}
	if len(jobs) == 0 {
		return
	}
	sent := make([][]bool, len(made))
	for k, p := range made {
		sent[k] = make([]bool, len(p.jobs))
	}
	next := make(chan job)
	var wg sync.WaitGroup
	for w := 0; w < min(batchSenders, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				vj := made[j.k].jobs[j.n]
				if err := e.send(ctx, vj); err != nil {
					e.log.Warn("outbox: enqueue failed; the sweeper will retry",
						zap.String("visit", made[j.k].v.ID), zap.String("job", vj.ID), zap.Error(err))
					continue
				}
				sent[j.k][j.n] = true // each job its own slot: no lock needed
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	ids, done, all := make([]string, len(made)), make([][]string, len(made)), make([]bool, len(made))
	for k, p := range made {
		ids[k], all[k] = p.v.ID, true
		for n, j := range p.jobs {
			if sent[k][n] {
				done[k] = append(done[k], j.ID)
			} else {
				all[k] = false
			}
		}
	}
	if err := bs.AckOutboxes(ctx, ids, done, all); err != nil {
		e.log.Warn("outbox: batch ack failed; the sweeper will see the entries again", zap.Error(err))
	}
}

// rememberPatientPhones is rememberPatientPhone for the visits a chunk
// created, in one pipeline.
func (e *Engine) rememberPatientPhones(ctx context.Context, bs batchStore, made []pending) {
	now := e.clock.Now()
	var hashes []string
	var holds []time.Duration
	for _, p := range made {
		if p.v.Patient.Phone != "" {
			hashes = append(hashes, e.callerKey(p.v.Patient.Phone))
			holds = append(holds, pinHold(p.v, now))
		}
	}
	if len(hashes) == 0 {
		return
	}
	if err := bs.RememberPatientPhones(ctx, hashes, holds); err != nil {
		e.log.Warn("dial-in: patient phones of a batch not remembered", zap.Error(err))
	}
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

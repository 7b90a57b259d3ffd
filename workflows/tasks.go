package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
)

// Task types: "domain:verb".
const (
	// TypeStateChanged records a committed state change in the timeline; it
	// is the proof that the outbox delivers, and the hook later effects use.
	TypeStateChanged = "visit:state-changed"
	// TypeOutboxSweep flushes outbox entries a crash left behind.
	TypeOutboxSweep = "maintenance:outbox-sweep"
)

// Register adds the engine's task handlers to mux.
func (e *Engine) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeStateChanged, e.handleStateChanged)
	mux.HandleFunc(TypeOutboxSweep, e.handleOutboxSweep)
	for typ, h := range e.extraHandlers {
		mux.HandleFunc(typ, h)
	}
}

// Handle registers a further task handler (used by the feature workflows).
func (e *Engine) Handle(typ string, h func(context.Context, *asynq.Task) error) {
	if e.extraHandlers == nil {
		e.extraHandlers = map[string]func(context.Context, *asynq.Task) error{}
	}
	e.extraHandlers[typ] = h
}

// decodePayload reads a task payload; a payload that cannot be read will
// never succeed, so it skips retries.
func decodePayload(t *asynq.Task) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || !visit.ValidID(p.VisitID) {
		return p, fmt.Errorf("%s: bad payload: %w", t.Type(), asynq.SkipRetry)
	}
	return p, nil
}

// jobVisit decodes a job's payload and reads its visit as stored now (jobs
// re-read the visit and do nothing when it no longer applies). A visit that
// is gone (purged, never created) is a nil visit and no error: the job has
// nothing left to do.
func (e *Engine) jobVisit(ctx context.Context, t *asynq.Task) (Payload, *visit.Visit, error) {
	p, err := decodePayload(t)
	if err != nil {
		return p, nil, err
	}
	v, err := e.store.Get(ctx, p.VisitID)
	if errors.Is(err, ErrNotFound) {
		return p, nil, nil
	}
	return p, v, err
}

func (e *Engine) handleStateChanged(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	_, _, err = e.update(ctx, p.VisitID, "", p.At, func(v *visit.Visit) error {
		if v.MarkDone("state-changed:"+p.Purpose, e.clock.Now()) {
			v.Log(visit.Entry{At: p.At, Source: visit.SourceWorker, Type: "state-changed",
				Summary: p.From + " → " + p.To})
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		e.log.Info("state-changed: visit gone", zap.String("visit", p.VisitID))
		return nil
	}
	return err
}

func (e *Engine) handleOutboxSweep(ctx context.Context, t *asynq.Task) error {
	// The payload "full" asks for the keyspace scan too (run less often).
	n, err := e.SweepOutbox(ctx, string(t.Payload()) == "full")
	if n > 0 {
		e.log.Info("outbox sweep re-sent entries", zap.Int("entries", n))
	}
	return err
}

package workflows

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// Payload is every task's payload: ids only, never PHI (contract §7).
type Payload struct {
	VisitID string `json:"visit_id"`
	// Purpose distinguishes tasks of one type for one visit ("24h", "s2").
	Purpose string    `json:"purpose,omitempty"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	At      time.Time `json:"at,omitempty"`
	N       int       `json:"n,omitempty"`
}

func (p Payload) bytes() []byte {
	b, _ := json.Marshal(p)
	return b
}

// job builds an outbox entry whose task ID is derived from visit, type and
// purpose, so the same purpose can only ever be one task.
func job(typ, queue string, p Payload, processAt time.Time) visit.Job {
	id := fmt.Sprintf("%s:%s", p.VisitID, typ)
	if p.Purpose != "" {
		id += ":" + p.Purpose
	}
	return visit.Job{ID: id, Type: typ, Queue: queue, Payload: p.bytes(), ProcessAt: processAt}
}

// transition records a state change and the jobs it calls for. It runs
// inside the atomic update, so the jobs are committed with the fact.
func (e *Engine) transition(v *visit.Visit, from, to visit.State, at time.Time) {
	v.Transitions++
	n := v.Transitions
	v.Enqueue(job(TypeStateChanged, QueueDefault,
		Payload{VisitID: v.ID, Purpose: fmt.Sprint(n), From: string(from), To: string(to), At: at, N: n}, time.Time{}))
	for _, hook := range e.transitionHooks {
		hook(v, from, to, at)
	}
}

// TransitionHook adds jobs for a state change; it runs inside the atomic
// update and must only record (v.Enqueue, v.Log), never do I/O.
type TransitionHook func(v *visit.Visit, from, to visit.State, at time.Time)

// OnTransition registers a hook. Call it while wiring, before serving.
func (e *Engine) OnTransition(h TransitionHook) { e.transitionHooks = append(e.transitionHooks, h) }

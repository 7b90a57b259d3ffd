package workflows

import (
	"encoding/json"

	"github.com/hibiken/asynq"
)

// Internals the external tests (package workflows_test) drive directly.

// EnsureRoom is (*Engine).ensureRoom: the one place rooms are created.
var EnsureRoom = (*Engine).ensureRoom

// task is a task of typ carrying p, as the outbox enqueues it (for the
// internal tests that call a handler directly).
func task(typ string, p Payload) *asynq.Task {
	b, _ := json.Marshal(p)
	return asynq.NewTask(typ, b)
}

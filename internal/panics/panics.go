// Package panics says what visitflow may write about a recovered panic. A
// panic's value can be anything the code at fault held (a visit, a phone
// number, a template's text), and what is written about it goes to logs
// and, for a job, to the task's error that Asynq stores and its dashboard
// shows, where PHI must never be.
package panics

import (
	"errors"
	"fmt"
	"runtime"
)

// Describe is what may be said of the recovered value v: the runtime's own
// message for a runtime error (an index out of range, a nil map or
// pointer: they name types and numbers, never data), else only v's type.
// The stack, logged beside it, says where.
func Describe(v any) string {
	var re runtime.Error
	if err, ok := v.(error); ok && errors.As(err, &re) {
		return re.Error()
	}
	return fmt.Sprintf("panic with a %T (value withheld: it may hold patient data)", v)
}

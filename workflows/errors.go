package workflows

import (
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/twilioapi"
)

// Errors the HTTP edge translates (besides visit.ErrNotFound,
// visit.ErrInvalidChange and visit.ErrLegLive).
var (
	// ErrUnmatched: a well-formed callback for a room or call we do not know.
	ErrUnmatched = errors.New("workflows: callback matches no visit")
	// ErrConflict: a create with a known id and a different body.
	ErrConflict = errors.New("workflows: visit exists with different details")
	// ErrGone: an invite that expired with its visit or died when the visit
	// was cancelled or ended (API: 410).
	ErrGone = errors.New("workflows: invite expired or revoked")
	// ErrInternal: a request failed on a bug of ours, already logged (500).
	ErrInternal = errors.New("workflows: internal error")
)

// InputError is bad input naming the field (API: 400).
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

func badField(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// jobError is the one place a task handler's error is translated for Asynq:
// a permanent Twilio error (any 4xx but 429: 21211, 21610…) skips retries,
// since retrying cannot fix it; everything else is retried with backoff.
// Register wraps every handler with it.
// Its text is for support staff (forStaff: our words, not Twilio's).
func jobError(err error) error {
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		return forStaff(err)
	}
	if twilioapi.Permanent(err) {
		return forStaff(fmt.Errorf("%w: %w", err, asynq.SkipRetry))
	}
	return forStaff(err)
}

package workflows

import (
	"context"
	"errors"
	"strings"

	"github.com/visitflow/visitflow/internal/visit"
)

// Replies to the patient's SMS that are not Twilio keywords (STOP, START,
// HELP are handled before). A reply answers the visit of the latest patient
// SMS sent to that number: "C" confirms it (confirmed_at, a "confirmed"
// timeline entry, a mark on the board); anything else is recorded as
// "patient replied", without its text, so support knows to look in the
// messaging console and no message body is ever stored.

// confirmReply is the reply that confirms a visit (case and surrounding
// punctuation ignored), as the reminder asks: "Reply C to confirm."
const confirmReply = "C"

// indexReplies makes replies from phone answer v until its window ends.
// The number is kept only as its keyed hash.
func (e *Engine) indexReplies(ctx context.Context, v *visit.Visit, phone string) error {
	return e.store.IndexReplies(ctx, e.phoneHash(phone), v.ID, e.windowEnd(v))
}

// applyPatientReply records a non-keyword inbound SMS on the visit it
// answers. A reply from a number no visit texted lately is ignored.
func (e *Engine) applyPatientReply(ctx context.Context, from, body string) error {
	if from == "" {
		return nil
	}
	id, err := e.store.VisitForReplies(ctx, e.phoneHash(from))
	if errors.Is(err, visit.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	confirms := strings.EqualFold(strings.Trim(strings.TrimSpace(body), ".!"), confirmReply)
	now := e.clock.Now()
	_, _, err = e.update(ctx, id, "", now, func(v *visit.Visit) error {
		// The index names the visit of the number's latest SMS: check the
		// number is still this visit's patient's (contact details change).
		if v.Patient.Phone != from {
			return nil
		}
		if confirms && !v.Finished() {
			if v.Confirm(now) {
				v.Log(visit.Entry{At: now, Source: visit.SourceSMS, Type: "confirmed", Summary: "the patient confirmed the visit (replied C)"})
			}
			return nil
		}
		v.Log(visit.Entry{At: now, Source: visit.SourceSMS, Type: "patient-replied", Summary: "patient replied by SMS (text not stored)"})
		return nil
	})
	if errors.Is(err, visit.ErrNotFound) {
		return nil // purged since
	}
	return err
}

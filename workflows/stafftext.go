package workflows

import (
	"errors"
	"fmt"
	"strings"

	"github.com/visitflow/visitflow/internal/twilioapi"
)

// What support staff read about a failure (the visit timeline, the board,
// Asynq's LastErr in the dashboard) is in our words with Twilio's error
// code, never Twilio's free text: that text is not ours to vouch for, can
// change without notice, and may carry what a caller typed or a number
// the phone redaction missed.

// twilioWords are our words for the Twilio error codes visitflow meets.
// An unknown code is shown as its number and HTTP status only.
var twilioWords = map[int]string{
	20003: "Twilio refused our credentials",
	20104: "the access token has expired",
	20157: "the access token lives longer than Twilio allows",
	20404: "Twilio has no such resource",
	20429: "Twilio's rate limit was reached",
	21211: "the phone number is not a valid destination",
	21220: "the call is no longer in progress",
	21610: "the recipient opted out of SMS (replied STOP)",
	21611: "the sending number has too many queued messages",
	21612: "Twilio cannot deliver SMS to this number",
	21614: "the number cannot receive SMS (not a mobile number)",
	53112: "the room is not in progress",
	53113: "a room with this name is already in progress",
	53205: "a participant with this identity joined, so the earlier one was disconnected",
}

// twilioFailureText says a Twilio failure in our words: "Twilio error 21211:
// the phone number is not a valid destination (HTTP 400)", "Twilio did not
// answer in time", "Twilio could not be reached". Any other error is
// described as "internal error".
func twilioFailureText(err error) string {
	var te *twilioapi.Error
	if !errors.As(err, &te) {
		return "internal error"
	}
	return twilioText(te)
}

func twilioText(te *twilioapi.Error) string {
	var b strings.Builder
	switch {
	case te.Code != 0:
		fmt.Fprintf(&b, "Twilio error %d", te.Code)
		if words, ok := twilioWords[te.Code]; ok {
			b.WriteString(": " + words)
		}
	case te.Status == 0 && te.Message == "timeout":
		b.WriteString("Twilio did not answer in time")
	case te.Status == 0 && te.Message == "canceled":
		b.WriteString("the request to Twilio was cancelled")
	case te.Status == 0:
		b.WriteString("Twilio could not be reached")
	case te.Status >= 500:
		b.WriteString("Twilio had a server error")
	default:
		b.WriteString("Twilio refused the request")
	}
	if te.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", te.Status)
	}
	return b.String()
}

// forStaff is err as Asynq records it (LastErr, shown raw by the
// dashboard): the same error for errors.Is and errors.As (SkipRetry, the
// Twilio classification), but its text has every Twilio error in the chain
// said in our words.
func forStaff(err error) error {
	if err == nil {
		return nil
	}
	var te *twilioapi.Error
	if !errors.As(err, &te) {
		return err
	}
	return staffError{err: err, text: strings.ReplaceAll(err.Error(), te.Error(), "twilio: "+te.Op+": "+twilioText(te))}
}

type staffError struct {
	err  error
	text string
}

func (e staffError) Error() string { return e.text }
func (e staffError) Unwrap() error { return e.err }

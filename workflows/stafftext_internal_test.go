package workflows

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/twilioapi"
)

func TestStaffTextOfEachKindOfTwilioFailure(t *testing.T) {
	tests := []struct {
		err  *twilioapi.Error
		want string
	}{
		{&twilioapi.Error{Op: "send sms", Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"},
			"Twilio error 21610: the recipient opted out of SMS (replied STOP) (HTTP 400)"},
		{&twilioapi.Error{Op: "create call", Status: 400, Code: 13224, Message: "Dial: Invalid phone number format"},
			"Twilio error 13224 (HTTP 400)"},
		{&twilioapi.Error{Op: "create room", Status: 503, Message: "service unavailable"}, "Twilio had a server error (HTTP 503)"},
		{&twilioapi.Error{Op: "create room", Status: 0, Message: "timeout", Class: twilioapi.ClassAmbiguous}, "Twilio did not answer in time"},
		{&twilioapi.Error{Op: "create room", Status: 0, Message: "network error: dial tcp 10.1.2.3:443: connection refused"}, "Twilio could not be reached"},
		{&twilioapi.Error{Op: "end room", Status: 404, Message: "not found"}, "Twilio refused the request (HTTP 404)"},
	}
	for _, tt := range tests {
		if got := twilioFailureText(tt.err); got != tt.want {
			t.Errorf("twilioFailureText(%v) = %q; want %q", tt.err, got, tt.want)
		}
		wrapped := fmt.Errorf("room for V-1: %w", tt.err)
		staff := jobError(wrapped)
		if want := "room for V-1: twilio: " + tt.err.Op + ": " + tt.want; staff.Error() != want &&
			staff.Error() != want+": "+asynq.SkipRetry.Error() {
			t.Errorf("jobError(%v) = %q; want %q (plus skip retry when permanent)", wrapped, staff.Error(), want)
		}
		var te *twilioapi.Error
		if !errors.As(staff, &te) || te != tt.err {
			t.Errorf("jobError(%v) lost the Twilio error for errors.As", wrapped)
		}
		if errors.Is(staff, asynq.SkipRetry) != twilioapi.Permanent(tt.err) {
			t.Errorf("jobError(%v): SkipRetry = %v; want %v", wrapped, errors.Is(staff, asynq.SkipRetry), twilioapi.Permanent(tt.err))
		}
	}
	if got := twilioFailureText(errors.New("redis: connection refused")); got != "internal error" {
		t.Errorf("twilioFailureText(non-Twilio) = %q; want internal error", got)
	}
}

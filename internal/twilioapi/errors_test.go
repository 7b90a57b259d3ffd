package twilioapi

import (
	"testing"
)

func TestRedactPhones(t *testing.T) {
	tests := []struct{ in, want string }{
		{"The 'To' number +15005550001 is not a valid phone number.", "The 'To' number [redacted] is not a valid phone number."},
		{"Invalid 'To' Phone Number: 555-123-4567", "Invalid 'To' Phone Number: [redacted]"},
		{"call +1 (415) 867-5309 now", "call [redacted] now"},
		{"number 4158675309.", "number [redacted]."},
		{"Room exists", "Room exists"},
		{"error 21211 on CA0123456789abcdef0123456789abcdef", "error 21211 on CA0123456789abcdef0123456789abcdef"},
		{"code 20429 after 3 tries", "code 20429 after 3 tries"},
		// Erring on the safe side: digit runs that merely look like numbers go too.
		{"1700000000 seconds", "[redacted] seconds"},
		{"Invalid 'To' Phone Number: +1555", "Invalid 'To' Phone Number: [redacted]"},
		{"+12", "+12"},
	}
	for _, tt := range tests {
		if got := redactPhones(tt.in); got != tt.want {
			t.Errorf("redactPhones(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "create call", Status: 400, Code: 21211, Message: "invalid 'To' number", Class: ClassFinal},
			"twilio: create call: 21211 invalid 'To' number (status 400)"},
		{&Error{Op: "send sms", Message: "timeout", Class: ClassAmbiguous}, "twilio: send sms: timeout"},
		{&Error{Op: "end room", Status: 503, Message: "service unavailable", Class: ClassAmbiguous},
			"twilio: end room: service unavailable (status 503)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
		if got := Permanent(tt.err); got != (tt.err.Class == ClassFinal) {
			t.Errorf("Permanent(%v) = %v; want %v", tt.err, got, tt.err.Class == ClassFinal)
		}
	}
}

// The one table of what a failure means: which refusals are final, which
// pass, and which leave the outcome unknown.
func TestClassOf(t *testing.T) {
	tests := []struct {
		status, code int
		sent         bool
		want         Class
	}{
		{400, 21211, true, ClassFinal},
		{400, 21612, true, ClassFinal},
		{400, 21614, true, ClassFinal},
		{400, 21610, true, ClassFinal},
		{404, 20404, true, ClassFinal},
		{400, 53112, true, ClassFinal},
		{429, 20429, true, ClassTransient},
		{400, 20429, true, ClassTransient},
		{400, 21611, true, ClassTransient}, // the sender's queue drains
		{401, 20003, true, ClassTransient}, // an operator fixes the credentials
		{403, 20003, true, ClassTransient},
		{500, 20500, true, ClassAmbiguous},
		{503, 0, true, ClassAmbiguous},
		{0, 0, true, ClassAmbiguous},   // timeout after sending
		{0, 0, false, ClassTransient},  // never left
		{201, 0, true, ClassAmbiguous}, // accepted, unreadable
	}
	for _, tt := range tests {
		if got := classOf(tt.status, tt.code, tt.sent); got != tt.want {
			t.Errorf("classOf(%d, %d, sent %v) = %v; want %v", tt.status, tt.code, tt.sent, got, tt.want)
		}
	}
}

package twilioapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/twilio/twilio-go/client"
)

// Twilio error codes callers act on.
const (
	CodeAuthenticate    = 20003 // our credentials were refused: an operator must fix them; retry meanwhile
	CodeRateLimited     = 20429 // too many requests: retry later
	CodeQueueFull       = 21611 // the sender's queue is full: retry when it drains
	CodeInvalidTo       = 21211 // invalid 'To' number: do not retry
	CodeOptedOut        = 21610 // recipient replied STOP: do not retry, remember the opt-out
	CodeNotMobile       = 21614 // 'To' is not a mobile number: do not retry
	CodeCallNotActive   = 21220 // call is not in progress
	CodeRoomExists      = 53113 // a room with that UniqueName is in progress
	CodeResourceMissing = 20404
)

// Class is what a failed request means for whoever might retry it. It is
// decided once, here, for every Twilio request visitflow makes.
type Class int

const (
	// ClassFinal: Twilio refused the request and would refuse it again (21211
	// invalid number, 21610 opted out, 21612, 21614, most other 4xx). Do not
	// retry.
	ClassFinal Class = iota + 1
	// ClassTransient: Twilio refused it for now (429/20429 rate limited, 21611
	// sender queue full, 401/20003 credentials an operator has to fix) or
	// the request never left this process (no connection). Nothing
	// happened at Twilio: retry with backoff.
	ClassTransient
	// ClassAmbiguous: the request left and no clear answer came back (a 5xx, a
	// timeout or a connection cut after sending, a 2xx we could not read).
	// Twilio may have acted on it. Idempotent requests (fetch, end a room,
	// hang up) may be retried; a request that creates something (an SMS, a
	// call) must not be sent again: its outcome is unknown until Twilio's
	// callbacks or REST API tell.
	ClassAmbiguous
)

func (c Class) String() string {
	switch c {
	case ClassFinal:
		return "final"
	case ClassTransient:
		return "transient"
	case ClassAmbiguous:
		return "ambiguous"
	}
	return "unclassified"
}

// Error is a failed Twilio request, classified once.
type Error struct {
	Op      string // what we were doing: "create call", "send sms"…
	Status  int    // HTTP status; 0 when there was no answer (timeout, network)
	Code    int    // Twilio error code; 0 when unknown
	Class   Class  // what a retry may do
	Message string // Twilio's message with any phone number redacted
}

// Error reads like "twilio: create call: 21211 invalid 'To' number (status
// 400)". It never contains a phone number.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("twilio: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Code != 0 {
		fmt.Fprintf(&b, "%d ", e.Code)
	}
	b.WriteString(e.Message)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (status %d)", e.Status)
	}
	return b.String()
}

// ClassOf returns the class of a Twilio failure in err's chain, or 0 when
// err is not one.
func ClassOf(err error) Class {
	var te *Error
	if errors.As(err, &te) {
		return te.Class
	}
	return 0
}

// Retryable reports whether err is a Twilio failure an idempotent request
// may be retried after: ClassTransient or ClassAmbiguous.
func Retryable(err error) bool {
	c := ClassOf(err)
	return c == ClassTransient || c == ClassAmbiguous
}

// Transient reports whether Twilio surely did not act on the request and a
// retry later may succeed.
func Transient(err error) bool { return ClassOf(err) == ClassTransient }

// Ambiguous reports whether Twilio may have acted on the request although
// it failed: never send it again blindly.
func Ambiguous(err error) bool { return ClassOf(err) == ClassAmbiguous }

// Permanent reports whether err is a Twilio refusal that retrying cannot fix
// (ClassFinal).
func Permanent(err error) bool { return ClassOf(err) == ClassFinal }

// Credentials reports whether Twilio refused our credentials (401/20003).
func Credentials(err error) bool {
	var te *Error
	return errors.As(err, &te) && (te.Status == http.StatusUnauthorized || te.Code == CodeAuthenticate)
}

// Code returns the Twilio error code in err, or 0.
func Code(err error) int {
	var te *Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

// classify turns whatever twilio-go returned into an *Error. status is the
// HTTP status seen on the wire (0 if none); sent tells whether the request
// was written out completely (so Twilio may have it).
func classify(op string, err error, status int, sent bool) *Error {
	e := &Error{Op: op, Status: status}
	var rest *client.TwilioRestError
	var restV1 *client.RestErrorV1
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &rest):
		e.Code, e.Message = rest.Code, rest.Message
		if rest.Status != 0 {
			e.Status = rest.Status
		}
	case errors.As(err, &restV1):
		e.Code, e.Message = restV1.Code, restV1.Message
		if restV1.HttpStatusCode != 0 {
			e.Status = restV1.HttpStatusCode
		}
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		e.Status, e.Message = 0, "timeout"
	case errors.Is(err, context.Canceled):
		e.Status, e.Message = 0, "canceled"
	case errors.As(err, &urlErr):
		// Network failure: keep the cause, not the URL.
		e.Status, e.Message = 0, "network error: "+urlErr.Err.Error()
	case status >= 400:
		// An error answer twilio-go could not decode (HTML from a proxy…).
		e.Message = strings.ToLower(http.StatusText(status))
	case status != 0:
		e.Message = "unreadable response: " + err.Error()
	default:
		e.Message = err.Error()
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(e.Status))
	}
	e.Message = redactPhones(e.Message)
	e.Class = classOf(e.Status, e.Code, sent)
	return e
}

// classOf is the one table of which Twilio failures are final, transient or
// ambiguous (twilio-protocol §6 and §9).
func classOf(status, code int, sent bool) Class {
	switch {
	case status == 0 && !sent:
		return ClassTransient // never left: Twilio cannot have it
	case status == 0:
		return ClassAmbiguous // sent, then no answer (timeout, connection cut)
	case status == http.StatusTooManyRequests, code == CodeRateLimited, code == CodeQueueFull,
		status == http.StatusUnauthorized, code == CodeAuthenticate:
		return ClassTransient
	case status >= 500:
		return ClassAmbiguous // Twilio may have acted before failing
	case status >= 400:
		return ClassFinal
	}
	return ClassAmbiguous // a 2xx (or 3xx) we could not read: it may have taken effect
}

// redactPhones replaces anything that looks like a phone number with
// "[redacted]": 7 or more digits, or + and 3 or more digits, optionally with
// spaces, dots, dashes or parentheses, not part of a longer word such as a SID.
func redactPhones(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		c := s[i]
		startsNumber := (c == '+' || c == '(' || isDigit(c)) && (i == 0 || !isWordByte(s[i-1]))
		if !startsNumber {
			b.WriteByte(c)
			i++
			continue
		}
		j, digits, lastDigit := i, 0, i
		for j < len(s) && strings.IndexByte("0123456789+-(). ", s[j]) >= 0 {
			if isDigit(s[j]) {
				digits++
				lastDigit = j
			}
			j++
		}
		end := lastDigit + 1
		if (digits >= 7 || (c == '+' && digits >= 3)) && (end >= len(s) || !isWordByte(s[end])) {
			b.WriteString("[redacted]")
			i = end
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isWordByte(c byte) bool {
	return isDigit(c) || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

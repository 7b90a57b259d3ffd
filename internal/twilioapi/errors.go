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
	CodeRateLimited     = 20429 // too many requests: retry later
	CodeInvalidTo       = 21211 // invalid 'To' number: do not retry
	CodeOptedOut        = 21610 // recipient replied STOP: do not retry, remember the opt-out
	CodeNotMobile       = 21614 // 'To' is not a mobile number: do not retry
	CodeCallNotActive   = 21220 // call is not in progress
	CodeRoomExists      = 53113 // a room with that UniqueName is in progress
	CodeResourceMissing = 20404
)

// Error is a failed Twilio request, classified once.
type Error struct {
	Op        string // what we were doing: "create call", "send sms"…
	Status    int    // HTTP status; 0 when there was no answer (timeout, network)
	Code      int    // Twilio error code; 0 when unknown
	Retryable bool   // 429/20429, 5xx, timeouts and network errors
	Message   string // Twilio's message with any phone number redacted
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

// Retryable reports whether err is a Twilio failure worth retrying with
// backoff: 429/20429, 5xx, timeouts and network errors.
func Retryable(err error) bool {
	var te *Error
	return errors.As(err, &te) && te.Retryable
}

// Permanent reports whether err is a Twilio failure that retrying cannot fix:
// any other 4xx (21211, 21614, 21610…).
func Permanent(err error) bool {
	var te *Error
	return errors.As(err, &te) && !te.Retryable
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
// HTTP status seen on the wire (0 if none).
func classify(op string, err error, status int) *Error {
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
	e.Retryable = e.Status == 0 || e.Status == http.StatusTooManyRequests ||
		e.Code == CodeRateLimited || e.Status >= 500
	if status != 0 && status < 400 && e.Code == 0 {
		// A 2xx we could not decode: the request may have taken effect.
		e.Retryable = false
	}
	return e
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

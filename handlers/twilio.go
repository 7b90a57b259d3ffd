package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/workflows"
)

// idempotencyHeader is the same on Twilio's retries of one request.
const idempotencyHeader = "I-Twilio-Idempotency-Token"

// handleVideoStatus folds a Video room status callback into its visit: 204.
func handleVideoStatus(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ev, err := ParseVideoEvent(r.PostForm)
		if err != nil {
			d.badCallback(w, r, err)
			return
		}
		ev.VisitHint = r.URL.Query().Get("visit")
		ev.Token = r.Header.Get(idempotencyHeader)
		res, err := d.Engine.ApplyVideo(r.Context(), ev)
		d.callbackOutcome(w, r, start, res, err)
	})
}

// handleVoiceStatus folds a Voice call status callback into its visit: 204.
func handleVoiceStatus(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ev, err := ParseVoiceEvent(r.PostForm)
		if err != nil {
			d.badCallback(w, r, err)
			return
		}
		ev.VisitHint = r.URL.Query().Get("visit")
		ev.LegAttempt, _ = strconv.Atoi(r.URL.Query().Get("attempt"))
		ev.Token = r.Header.Get(idempotencyHeader)
		d.Metrics.CallOutcome(ev.CallStatus)
		res, err := d.Engine.ApplyVoice(r.Context(), ev)
		d.callbackOutcome(w, r, start, res, err)
	})
}

func (d Deps) badCallback(w http.ResponseWriter, r *http.Request, err error) {
	d.Metrics.WebhookRequests.WithLabelValues(routeLabel(r), "invalid").Inc()
	var fe *workflows.InputError
	field := ""
	if errors.As(err, &fe) {
		field = fe.Field
	}
	writeError(w, http.StatusBadRequest, "invalid_callback", err.Error(), field)
}

// callbackOutcome answers Twilio: 204 when applied, duplicate or unmatched
// (Twilio must not retry those), 503 when Redis is down (Twilio may retry).
func (d Deps) callbackOutcome(w http.ResponseWriter, r *http.Request, start time.Time, res workflows.Result, err error) {
	route := routeLabel(r)
	switch {
	case errors.Is(err, workflows.ErrUnmatched):
		d.Metrics.WebhookRequests.WithLabelValues(route, "unmatched").Inc()
		w.WriteHeader(http.StatusNoContent)
	case err != nil:
		d.Metrics.WebhookRequests.WithLabelValues(route, "unavailable").Inc()
		d.Log.Error("callback not committed", zap.String("route", route), zap.String("visit", res.VisitID), zap.Error(err))
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
	default:
		outcome := "applied"
		if res.Duplicate {
			outcome = "duplicate"
		}
		d.Metrics.WebhookRequests.WithLabelValues(route, outcome).Inc()
		d.Metrics.CallbackLatency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		w.WriteHeader(http.StatusNoContent)
	}
}

// form reads Twilio parameters, collecting the first error with its field.
type form struct {
	v   url.Values
	err error
}

func (f *form) fail(field, format string, args ...any) {
	if f.err == nil {
		f.err = &workflows.InputError{Field: field, Message: fmt.Sprintf(format, args...)}
	}
}

func (f *form) str(name string) string { return f.v.Get(name) }

func (f *form) required(name string) string {
	s := f.v.Get(name)
	if s == "" {
		f.fail(name, "is required")
	}
	return s
}

func (f *form) integer(name string) int {
	s := f.v.Get(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		f.fail(name, "must be an integer")
	}
	return n
}

func (f *form) seconds(name string) time.Duration {
	return time.Duration(f.integer(name)) * time.Second
}

// timestamp parses one of layouts; empty is the zero time (the engine then
// uses its clock).
func (f *form) timestamp(name string, layouts ...string) time.Time {
	s := f.v.Get(name)
	if s == "" {
		return time.Time{}
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC()
		}
	}
	f.fail(name, "is not a valid timestamp")
	return time.Time{}
}

// ParseVideoEvent reads a Video status callback (twilio-protocol §2);
// the error names the first bad field.
func ParseVideoEvent(v url.Values) (workflows.VideoEvent, error) {
	f := &form{v: v}
	ev := workflows.VideoEvent{
		AccountSID:          f.str("AccountSid"),
		Event:               f.required("StatusCallbackEvent"),
		RoomSID:             f.str("RoomSid"),
		RoomName:            f.str("RoomName"),
		RoomStatus:          f.str("RoomStatus"),
		RoomType:            f.str("RoomType"),
		Timestamp:           f.timestamp("Timestamp", time.RFC3339Nano, time.RFC1123Z),
		SequenceNumber:      f.integer("SequenceNumber"),
		ParticipantSID:      f.str("ParticipantSid"),
		ParticipantIdentity: f.str("ParticipantIdentity"),
		ParticipantStatus:   f.str("ParticipantStatus"),
		ParticipantDuration: f.seconds("ParticipantDuration"),
		RoomDuration:        f.seconds("RoomDuration"),
		TrackSID:            f.str("TrackSid"),
		TrackKind:           f.str("TrackKind"),
		RecordingSID:        f.str("RecordingSid"),
		SourceSID:           f.str("SourceSid"),
		RecordingURI:        f.str("RecordingUri"),
		Container:           f.str("Container"),
		Codec:               f.str("Codec"),
		RecordingDuration:   f.seconds("Duration"),
		FailedOperation:     f.str("FailedOperation"),
	}
	if s := v.Get("Size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			f.fail("Size", "must be an integer")
		}
		ev.RecordingSize = n
	}
	if ev.RoomName == "" && ev.RoomSID == "" {
		f.fail("RoomName", "RoomName or RoomSid is required")
	}
	switch ev.Event {
	case workflows.EventParticipantConnected, workflows.EventParticipantDisconnected:
		f.required("ParticipantSid")
		f.required("ParticipantIdentity")
	}
	return ev, f.err
}

// ParseVoiceEvent reads a Voice call status callback (twilio-protocol §3).
func ParseVoiceEvent(v url.Values) (workflows.VoiceEvent, error) {
	f := &form{v: v}
	ev := workflows.VoiceEvent{
		AccountSID:      f.str("AccountSid"),
		CallSID:         f.required("CallSid"),
		ParentCallSID:   f.str("ParentCallSid"),
		CallStatus:      f.required("CallStatus"),
		Direction:       f.str("Direction"),
		APIVersion:      f.str("ApiVersion"),
		CallbackSource:  f.str("CallbackSource"),
		SequenceNumber:  f.integer("SequenceNumber"),
		Timestamp:       f.timestamp("Timestamp", time.RFC1123Z, time.RFC1123, time.RFC3339Nano),
		CallDuration:    f.seconds("CallDuration"),
		SipResponseCode: f.integer("SipResponseCode"),
		AnsweredBy:      f.str("AnsweredBy"),
		From:            f.str("From"),
		To:              f.str("To"),
		Caller:          f.str("Caller"),
		Called:          f.str("Called"),
	}
	return ev, f.err
}

// handleSMSStatus is POST /twilio/sms/status: the message's status in the
// visit's timeline (204).
func handleSMSStatus(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		f := &form{v: r.PostForm}
		ev := workflows.SMSStatusEvent{
			VisitHint: r.URL.Query().Get("visit"), Purpose: r.URL.Query().Get("purpose"),
			Token:      r.Header.Get(idempotencyHeader),
			MessageSID: f.required("MessageSid"), Status: f.required("MessageStatus"),
			ErrorCode: f.integer("ErrorCode"), To: f.str("To"),
		}
		if f.err != nil {
			d.badCallback(w, r, f.err)
			return
		}
		d.Metrics.SMSOutcome(ev.Status)
		res, err := d.Engine.ApplySMSStatus(r.Context(), ev)
		d.callbackOutcome(w, r, start, res, err)
	})
}

package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// VideoEvent is a Twilio Video room status callback (twilio-protocol §2).
type VideoEvent struct {
	// VisitHint is the ?visit= of the callback URL we gave Twilio, if any.
	VisitHint string
	// Token is the I-Twilio-Idempotency-Token header (same on retries).
	Token string

	AccountSID          string
	Event               string // StatusCallbackEvent
	RoomSID             string
	RoomName            string
	RoomStatus          string
	RoomType            string
	Timestamp           time.Time
	SequenceNumber      int
	ParticipantSID      string
	ParticipantIdentity string
	ParticipantStatus   string
	ParticipantDuration time.Duration
	RoomDuration        time.Duration
	TrackSID            string
	TrackKind           string
	RecordingSID        string
	SourceSID           string
	RecordingURI        string
	Container           string
	Codec               string
	RecordingDuration   time.Duration
	RecordingSize       int64
	FailedOperation     string
}

// Video callback events we understand.
const (
	EventRoomCreated             = "room-created"
	EventRoomEnded               = "room-ended"
	EventParticipantConnected    = "participant-connected"
	EventParticipantDisconnected = "participant-disconnected"
)

// ApplyVideo folds a Video callback into its visit. ErrUnmatched means the
// room belongs to no visit we know.
func (e *Engine) ApplyVideo(ctx context.Context, ev VideoEvent) (Result, error) {
	lookup := func() (string, error) { return e.store.VisitForRoom(ctx, ev.RoomName) }
	// A participant's event reads and writes that participant alone of the
	// guests; a room's event (room-ended asks whether anyone joined) the
	// whole visit.
	return e.applyCallback(ctx, ev.VisitHint, lookup, ev.Token, ev.ParticipantSID, ev.Timestamp, func(v *visit.Visit, at time.Time) error {
		return e.foldVideo(v, ev, at, visit.SourceVideo)
	})
}

// foldVideo records what a Video event says about visit v at time at, with
// timeline entries from source: a callback (twilio.video) or what Twilio's
// REST API reported (twilio.rest). Both go through here, and every fact is
// set once, so a late callback and a reconciled fact agree whatever
// arrives first.
func (e *Engine) foldVideo(v *visit.Visit, ev VideoEvent, at time.Time, source string) error {
	if ev.RoomName != "" && ev.RoomName != v.Room.Name {
		// A ?visit= hint that disagrees with the room is not ours to trust.
		return ErrUnmatched
	}
	if ev.RoomSID != "" && v.IsDone(doneRoomClosedUnused+ev.RoomSID) {
		return nil // a late or repeated report of a room Twilio closed early
	}
	if v.Room.SID == "" && ev.RoomSID != "" {
		v.Room.SID = ev.RoomSID
	}
	entry := visit.Entry{At: at, Source: source, Type: ev.Event}
	switch ev.Event {
	case EventParticipantConnected:
		if v.ParticipantConnected(ev.ParticipantSID, ev.ParticipantIdentity, at) {
			entry.Summary = string(v.RoleOf(ev.ParticipantIdentity)) + " connected"
			v.Log(entry)
		}
	case EventParticipantDisconnected:
		if v.ParticipantDisconnected(ev.ParticipantSID, ev.ParticipantIdentity, at, ev.ParticipantDuration) {
			entry.Summary = string(v.RoleOf(ev.ParticipantIdentity)) + " disconnected"
			v.Log(entry)
		}
	case EventRoomEnded:
		if e.roomEndedEarly(v, ev, at) {
			e.roomGone(v, at)
			return nil
		}
		v.MarkDone(doneRoomEndedByTwilio, at) // room:end needs no REST call
		if v.RoomEnded(at) {
			entry.Summary = "room ended"
			v.Log(entry)
		}
	case EventRoomCreated:
		if v.MarkDone("video:room-created", at) {
			entry.Summary = "room created"
			v.Log(entry)
		}
	default:
		// Track and recording events are counted, not kept: they say
		// nothing about the visit's state and would flood the timeline.
		if ev.RecordingSID != "" && v.MarkDone("video:"+ev.Event+":"+ev.RecordingSID, at) {
			entry.Summary = ev.Event
			v.Log(entry)
		}
	}
	e.interpreterParticipant(v, ev, at)
	return nil
}

// VoiceEvent is a Voice call status callback (twilio-protocol §3).
type VoiceEvent struct {
	VisitHint string
	Token     string

	// LegAttempt is the ?attempt= of the callback URL: which dial attempt
	// of the interpreter leg placed the call (0 when not one of ours).
	LegAttempt int

	AccountSID      string
	CallSID         string
	ParentCallSID   string
	CallStatus      string
	Direction       string
	APIVersion      string
	CallbackSource  string
	SequenceNumber  int
	Timestamp       time.Time
	CallDuration    time.Duration
	SipResponseCode int
	AnsweredBy      string
	// From, To, Caller, Called are PHI: parsed for completeness, never stored or logged.
	From, To, Caller, Called string
}

// ApplyVoice folds a call status callback into its visit.
func (e *Engine) ApplyVoice(ctx context.Context, ev VoiceEvent) (Result, error) {
	lookup := func() (string, error) { return e.store.VisitForCall(ctx, ev.CallSID) }
	return e.applyCallback(ctx, ev.VisitHint, lookup, ev.Token, "", ev.Timestamp, func(v *visit.Visit, at time.Time) error {
		e.foldVoice(v, ev, at, visit.SourceVoice)
		return nil
	})
}

// foldVoice records a call's status at time at, from a callback
// (twilio.voice) or Twilio's REST API (twilio.rest); each status of a call
// counts once, whichever source told it first.
func (e *Engine) foldVoice(v *visit.Visit, ev VoiceEvent, at time.Time, source string) {
	if !v.MarkDone("voice:"+ev.CallSID+":"+ev.CallStatus, at) {
		return
	}
	v.Log(visit.Entry{At: at, Source: source, Type: "call-" + ev.CallStatus,
		Summary: callLegName(v, ev) + " " + ev.CallStatus})
	e.interpreterCallStatus(v, ev, at) // the leg progresses or retries (interpreter.go)
}

// applyCallback folds one Twilio callback into its visit: the visit named by
// the ?visit= hint or found by lookup, changed by fold at the callback's
// timestamp (now when it has none) in one atomic step deduplicated by the
// idempotency token; participant names the one participant the callback
// is about ("" for the whole visit, see updateFor). A visit that does not
// exist is ErrUnmatched.
func (e *Engine) applyCallback(ctx context.Context, hint string, lookup func() (string, error), token, participant string,
	timestamp time.Time, fold func(v *visit.Visit, at time.Time) error) (Result, error) {
	id, err := e.visitFor(ctx, hint, lookup)
	if err != nil {
		return Result{}, err
	}
	at := timestamp
	if at.IsZero() {
		at = e.clock.Now()
	}
	heard := e.clock.Now()
	res, _, err := e.updateFor(ctx, id, token, participant, at, func(v *visit.Visit) error {
		if err := fold(v, at); err != nil {
			return err
		}
		v.Heard(heard)
		return nil
	})
	return res, unmatchedIfMissing(err)
}

// unmatchedIfMissing turns "no such visit" (a stale ?visit= hint or index
// entry) into ErrUnmatched: Twilio gets a 204 and must not retry.
func unmatchedIfMissing(err error) error {
	if errors.Is(err, visit.ErrNotFound) {
		return ErrUnmatched
	}
	return err
}

func callLegName(v *visit.Visit, ev VoiceEvent) string {
	switch {
	case v.Interpreter != nil && (v.Interpreter.CallSID == ev.CallSID || ev.LegAttempt > 0):
		return "interpreter call"
	case v.IsDone("dialin:" + ev.CallSID):
		return "dial-in call"
	}
	return "call"
}

// visitFor finds the visit a callback belongs to: the ?visit= hint we put in
// the callback URL when present and known, else the index lookup.
func (e *Engine) visitFor(ctx context.Context, hint string, lookup func() (string, error)) (string, error) {
	if hint != "" && visit.ValidID(hint) {
		return hint, nil
	}
	id, err := lookup()
	if errors.Is(err, visit.ErrNotFound) {
		return "", ErrUnmatched
	}
	if err != nil {
		return "", fmt.Errorf("workflows: find visit: %w", err)
	}
	return id, nil
}

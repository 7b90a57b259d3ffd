package workflows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/twiml"
)

// PSTN dial-in limits.
const (
	// pinTriesPerCall wrong PINs end the call politely.
	pinTriesPerCall = 3
	// callerFailureLimit wrong PINs from one number within
	// callerFailureWindow refuse further calls from it until the window ends.
	callerFailureLimit  = 6
	callerFailureWindow = time.Hour
	// holdSeconds and maxHolds bound how long a caller waits for a room
	// that is being opened.
	holdSeconds = 3
	maxHolds    = 5
)

// Spoken texts of the dial-in flow.
const (
	sayWrongPIN    = "Sorry, that PIN was not recognised. Please check the PIN in your appointment message and call again. Goodbye."
	sayRateLimited = "Sorry, we could not verify your PIN. Please try again later or contact your provider's office. Goodbye."
	sayVisitOver   = "This visit has ended. Please contact your provider's office if you need help. Goodbye."
	sayNoRoom      = "Sorry, we could not open your visit right now. Please call back in a few minutes. Goodbye."
)

// callerKey identifies a caller for rate limiting without storing the
// number: an HMAC of it keyed with the auth token, so the key cannot be
// reversed by hashing every possible phone number.
func (e *Engine) callerKey(from string) string {
	return keyedPhoneHash("dialin:"+e.cfg.Twilio.AuthToken, from)[:32]
}

func (e *Engine) pinAction(try int) string {
	return e.voiceURL("/twilio/voice/pin", "", "try", strconv.Itoa(try))
}

// DialInIncoming answers an inbound call to our number: ask for the visit
// PIN, unless the caller has failed too often recently.
func (e *Engine) DialInIncoming(ctx context.Context, from string) (string, error) {
	n, err := e.store.DialInFailures(ctx, e.callerKey(from))
	if err != nil {
		return "", err
	}
	if n >= callerFailureLimit {
		return twiml.Goodbye(sayRateLimited), nil
	}
	return twiml.AskPIN(e.pinAction(1), false), nil
}

// DialInPIN checks the PIN a caller entered (try counts from 1). A right PIN
// for an open visit bridges the caller into the room as the patient's phone
// leg; a visit not open yet is announced with its local time; a wrong PIN
// asks again, up to pinTriesPerCall, then says goodbye.
func (e *Engine) DialInPIN(ctx context.Context, callSID, from, digits string, try int) (string, error) {
	v, err := e.visitByPIN(ctx, digits)
	if err != nil {
		return "", err
	}
	if v == nil {
		n, err := e.store.AddDialInFailure(ctx, e.callerKey(from), callerFailureWindow)
		if err != nil {
			return "", err
		}
		if try >= pinTriesPerCall || n >= callerFailureLimit {
			return twiml.Goodbye(sayWrongPIN), nil
		}
		return twiml.AskPIN(e.pinAction(try+1), true), nil
	}
	now := e.clock.Now()
	if opens := v.ScheduledAt.Add(-e.cfg.Visits.RoomLead); now.Before(opens) {
		return twiml.Goodbye(fmt.Sprintf("Your visit is scheduled for %s. Please call back within %d minutes of that time. Goodbye.",
			localTime(v, v.ScheduledAt), int(e.cfg.Visits.RoomLead.Minutes()))), nil
	}
	if err := e.store.IndexCall(ctx, callSID, v.ID); err != nil {
		return "", err
	}
	_, v, err = e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		if v.MarkDone("dialin:"+callSID, now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceVoice, Type: "dial-in", Summary: "patient dialed in (PIN accepted)"})
		}
		if v.Room.SID == "" {
			v.Enqueue(roomEnsureJob(v))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return e.dialInConnect(v, 0), nil
}

// DialInConnect continues a caller who is holding for the room (hold counts
// the holds so far). The call must be one DialInPIN accepted for the visit.
func (e *Engine) DialInConnect(ctx context.Context, callSID, id string, hold int) (string, error) {
	got, err := e.store.VisitForCall(ctx, callSID)
	if errors.Is(err, visit.ErrNotFound) || (err == nil && got != id) {
		return twiml.Goodbye(sayVisitOver), nil
	}
	if err != nil {
		return "", err
	}
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, visit.ErrNotFound) {
		return twiml.Goodbye(sayVisitOver), nil
	}
	if err != nil {
		return "", err
	}
	return e.dialInConnect(v, hold), nil
}

func (e *Engine) dialInConnect(v *visit.Visit, hold int) string {
	switch {
	case v.Finished():
		return twiml.Goodbye(sayVisitOver)
	case v.Room.SID != "":
		return twiml.JoinRoom(v.Room.Name, v.DialInIdentity())
	case hold >= maxHolds:
		return twiml.Goodbye(sayNoRoom)
	}
	next := e.voiceURL("/twilio/voice/dialin/connect", v.ID, "hold", strconv.Itoa(hold+1))
	return twiml.Hold(next, holdSeconds)
}

// visitByPIN returns the open visit holding pin, or nil.
func (e *Engine) visitByPIN(ctx context.Context, pin string) (*visit.Visit, error) {
	if len(pin) != twiml.PINLength || strings.Trim(pin, "0123456789") != "" {
		return nil, nil
	}
	id, err := e.store.VisitForPIN(ctx, pin)
	if errors.Is(err, visit.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, visit.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if v.DialIn.PIN != pin || v.Finished() {
		return nil, nil
	}
	return v, nil
}

package visit

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// LegState is where the interpreter leg stands (contract §4).
type LegState string

// Interpreter leg states, in the order a leg meets them.
const (
	LegRequested LegState = "requested" // waiting for the dial job (first attempt or a retry after backoff)
	LegDialing   LegState = "dialing"   // an attempt is claimed; its call is being placed
	LegRinging   LegState = "ringing"
	LegAnswered  LegState = "answered" // answered; the IVR path is being played
	LegBridged   LegState = "bridged"  // the interpreter is a participant of the room
	LegEnded     LegState = "ended"    // hung up (by us, the interpreter, or the visit ending)
	LegFailed    LegState = "failed"   // every attempt failed; the provider was told
)

// ErrLegLive: an interpreter leg is already being dialled or connected (API: 409).
var ErrLegLive = errors.New("visit: an interpreter leg is already live for this visit")

// errLegRefused is wrapped by leg events the leg's state does not allow.
// Callers of the leg's methods treat it as "this event is stale": a retried
// job, a late callback or a call of an earlier attempt.
var errLegRefused = errors.New("visit: interpreter leg event not allowed")

// The interpreter leg's transitions. Each event is a method below that
// refuses (returns an error wrapping errLegRefused) what the state does not
// allow; "·" means refused.
//
//	state \ event  Claim    GiveBack   Progress(ringing / in-progress / ended)   Bridge   Stop    AttemptFailed
//	requested      dialing  ·          ·                                         bridged  ended   ·
//	dialing        ·        requested  ringing / answered / attempt failed       bridged  ended   retry or failed
//	ringing        ·        ·          · / answered / attempt failed             bridged  ended   retry or failed
//	answered       ·        ·          · / · / attempt failed                    bridged  ended   retry or failed
//	bridged        ·        ·          · / · / ended                             ·        ended   ·
//	ended, failed  ·        ·          a terminal status sets EndedAt once       ·        ·       ·
//
// "retry" is requested again with NextAttemptAt set (attempts left), "failed"
// is the end after MaxAttempts. Attempt numbers count from 1; a request
// number names one request's jobs so a new request never collides with an
// old one.

// RequestInterpreter starts a new interpreter request on line at t. A
// finished visit refuses it (ErrInvalidChange), as does a live leg
// (ErrLegLive).
func (v *Visit) RequestInterpreter(line string, t time.Time) (*InterpreterLeg, error) {
	if err := v.RefuseIfFinished("dial an interpreter for"); err != nil {
		return nil, err
	}
	if v.Interpreter.Live() {
		return nil, ErrLegLive
	}
	request := 1
	if v.Interpreter != nil {
		request = v.Interpreter.Request + 1
	}
	v.Interpreter = &InterpreterLeg{Line: line, State: LegRequested, RequestedAt: t, Request: request}
	return v.Interpreter, nil
}

// Live reports whether the leg is being dialled or is connected, i.e. a
// second request must wait (409) and ending the visit must hang it up.
func (l *InterpreterLeg) Live() bool {
	if l == nil {
		return false
	}
	switch l.State {
	case LegEnded, LegFailed:
		return false
	}
	return true
}

// Is reports whether the leg is request's and currently on attempt.
func (l *InterpreterLeg) Is(request, attempt int) bool {
	return l != nil && l.Request == request && l.Attempts == attempt
}

func (l *InterpreterLeg) refuse(event string) error {
	if l == nil {
		return fmt.Errorf("%w: %s without a leg", errLegRefused, event)
	}
	return fmt.Errorf("%w: %s while %s (request %d, attempt %d)", errLegRefused, event, l.State, l.Request, l.Attempts)
}

// Claim takes attempt of request for dialing (requested → dialing); only the
// next attempt of the current request can be claimed, so a retried or
// duplicated dial job never places a second call.
func (l *InterpreterLeg) Claim(request, attempt int) error {
	if l == nil || l.State != LegRequested || !l.Is(request, attempt-1) {
		return l.refuse(fmt.Sprintf("claim attempt %d of request %d", attempt, request))
	}
	l.State, l.Attempts, l.CallSID, l.NextAttemptAt = LegDialing, attempt, "", nil
	return nil
}

// Unplaced reports whether attempt of request is claimed but has no call
// recorded yet (the dial job is placing it, or died before it could).
func (l *InterpreterLeg) Unplaced(request, attempt int) bool {
	return l.Is(request, attempt) && l.State == LegDialing && l.CallSID == ""
}

// GiveBack returns an unplaced attempt (dialing → requested) so the dial
// job's retry can claim it again.
func (l *InterpreterLeg) GiveBack(request, attempt int) error {
	if !l.Unplaced(request, attempt) {
		return l.refuse(fmt.Sprintf("give back attempt %d", attempt))
	}
	l.State, l.Attempts = LegRequested, attempt-1
	return nil
}

// RecordCall remembers the call placed for attempt of request (the first SID
// recorded wins: its status callback may have recorded it already). It
// reports whether that call must be hung up at once: the leg moved on (was
// stopped, or is another attempt's) while it was being placed.
func (l *InterpreterLeg) RecordCall(request, attempt int, sid string) (hangUp bool) {
	if !l.Is(request, attempt) {
		return true
	}
	if l.CallSID == "" {
		l.CallSID = sid
	}
	return l.State == LegEnded
}

// AdoptCall makes the call of a status callback the leg's call when the dial
// job placed it but has not recorded it yet: the callback URL's attempt
// names the attempt being dialled. It reports whether sid is the leg's call.
func (l *InterpreterLeg) AdoptCall(sid string, attempt int) bool {
	if l == nil {
		return false
	}
	if l.CallSID == sid {
		return true
	}
	if l.CallSID == "" && l.State == LegDialing && attempt > 0 && attempt == l.Attempts {
		l.CallSID = sid
		return true
	}
	return false
}

// CallOutcome is what a call status did to the leg.
type CallOutcome int

// Call outcomes.
const (
	CallNoChange      CallOutcome = iota // refused or nothing to do
	CallProgressed                       // ringing or answered
	CallHungUp                           // the bridged interpreter hung up: the leg ended
	CallAttemptFailed                    // the attempt ended before bridging; see AttemptFailed
)

// Progress moves the leg by its call's status (Twilio's CallStatus) at t. A
// terminal status before bridging is CallAttemptFailed with the outcome
// to record (busy, no-answer, failed, machine, "hung up before bridging");
// the caller then decides retry or give up with AttemptFailed.
func (l *InterpreterLeg) Progress(status, answeredBy string, t time.Time) (CallOutcome, string) {
	if l == nil {
		return CallNoChange, ""
	}
	if !l.Live() {
		if TerminalCallStatus(status) && l.EndedAt == nil {
			l.EndedAt = utc(t)
		}
		return CallNoChange, ""
	}
	switch {
	case status == "ringing" && l.State == LegDialing:
		l.State = LegRinging
		return CallProgressed, ""
	case status == "in-progress" && (l.State == LegDialing || l.State == LegRinging):
		l.State = LegAnswered
		return CallProgressed, ""
	case !TerminalCallStatus(status), l.State == LegRequested:
		// A progress event the state is past, or the end of a call whose
		// attempt was already counted (the leg waits for its next one).
		return CallNoChange, ""
	case l.State == LegBridged:
		l.State, l.EndedAt = LegEnded, utc(t)
		return CallHungUp, ""
	}
	outcome := status
	switch {
	case AnsweredByMachine(answeredBy):
		outcome = "machine"
	case status == "completed":
		outcome = "hung up before bridging"
	}
	return CallAttemptFailed, outcome
}

// AttemptFailed records that the current attempt did not reach the
// interpreter. With attempts left (fewer than maxAttempts) the leg waits for
// the next attempt at next and AttemptFailed reports retry; otherwise the leg
// has failed for good.
func (l *InterpreterLeg) AttemptFailed(outcome string, maxAttempts int, next, t time.Time) (retry bool, err error) {
	switch {
	case l == nil:
		return false, l.refuse("fail an attempt")
	case l.State != LegDialing && l.State != LegRinging && l.State != LegAnswered:
		return false, l.refuse("fail attempt " + fmt.Sprint(l.Attempts))
	}
	l.LastOutcome = outcome
	if l.Attempts < maxAttempts {
		l.State, l.NextAttemptAt = LegRequested, utc(next)
		return true, nil
	}
	l.State, l.EndedAt, l.NextAttemptAt = LegFailed, utc(t), nil
	return false, nil
}

// Bridge records that the interpreter joined the room at t.
func (l *InterpreterLeg) Bridge(t time.Time) error {
	if !l.Live() || l.State == LegBridged {
		return l.refuse("bridge")
	}
	l.State, l.BridgedAt = LegBridged, utc(t)
	return nil
}

// Stop ends a live leg at t (hung up on request, the visit ended). A leg
// that is not live refuses.
func (l *InterpreterLeg) Stop(t time.Time) error {
	if !l.Live() {
		return l.refuse("stop")
	}
	l.State, l.EndedAt, l.NextAttemptAt = LegEnded, utc(t), nil
	return nil
}

// WantsBridgeTwiML reports whether the call sid, answered by answeredBy,
// should be bridged into the room: the leg is live, not bridged yet, the
// call is the leg's (or not recorded yet) and a person answered.
func (l *InterpreterLeg) WantsBridgeTwiML(sid, answeredBy string) bool {
	return l.Live() && l.State != LegBridged && (l.CallSID == "" || l.CallSID == sid) && !AnsweredByMachine(answeredBy)
}

// TerminalCallStatus reports whether a call status is final.
func TerminalCallStatus(status string) bool {
	switch status {
	case "completed", "busy", "no-answer", "failed", "canceled":
		return true
	}
	return false
}

// AnsweredByMachine reports whether Twilio's AnsweredBy is a machine or fax.
func AnsweredByMachine(answeredBy string) bool {
	return strings.HasPrefix(answeredBy, "machine_") || answeredBy == "fax"
}

func utc(t time.Time) *time.Time {
	t = t.UTC()
	return &t
}

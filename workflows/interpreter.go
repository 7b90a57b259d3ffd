package workflows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/twiml"
)

// Interpreter task types.
const (
	// TypeInterpreterDial places one attempt's call (purpose r<request>-a<attempt>).
	TypeInterpreterDial = "interpreter:dial"
	// TypeInterpreterCheck fails an attempt whose call was claimed but never
	// recorded (a worker died between claiming and placing it).
	TypeInterpreterCheck = "interpreter:check"
	// TypeInterpreterHangup hangs up the leg's call (purpose r<request>).
	TypeInterpreterHangup = "interpreter:hangup"
	// TypeInterpreterFailedSMS tells the provider the line could not be reached.
	TypeInterpreterFailedSMS = "interpreter:failed-sms"
)

// ErrLegLive: an interpreter leg is already being dialled or connected (409).
var ErrLegLive = errors.New("workflows: an interpreter leg is already live for this visit")

// interpreterEvents are the call progress events we subscribe to.
var interpreterEvents = []string{"initiated", "ringing", "answered", "completed"}

// enableLegs registers the phone-leg and invite workflows (rooms: rooms.go).
func (e *Engine) enableLegs() {
	e.Handle(TypeInterpreterDial, e.handleInterpreterDial)
	e.Handle(TypeInterpreterCheck, e.handleInterpreterCheck)
	e.Handle(TypeInterpreterHangup, e.handleInterpreterHangup)
	e.Handle(TypeInterpreterFailedSMS, e.handleInterpreterFailedSMS)
	e.OnTransition(func(v *visit.Visit, _, to visit.State, at time.Time) {
		if !to.Open() || v.Finished() {
			e.stopLegs(v, at, "visit "+string(to))
		}
	})
}

func legPurpose(request, attempt int) string { return fmt.Sprintf("r%d-a%d", request, attempt) }

func parseLegPurpose(s string) (request, attempt int, ok bool) {
	_, err := fmt.Sscanf(s, "r%d-a%d", &request, &attempt)
	return request, attempt, err == nil && request > 0 && attempt > 0
}

// decodeLegPayload decodes the payload of a job for one dial attempt and
// its purpose ("r<request>-a<attempt>"); a malformed one is never retried.
func decodeLegPayload(t *asynq.Task) (p Payload, request, attempt int, err error) {
	if p, err = decodePayload(t); err != nil {
		return p, 0, 0, err
	}
	request, attempt, ok := parseLegPurpose(p.Purpose)
	if !ok {
		return p, 0, 0, fmt.Errorf("%s: bad purpose: %w", t.Type(), asynq.SkipRetry)
	}
	return p, request, attempt, nil
}

// retryBackoff is the wait after failed attempt n: retry_backoff doubling
// with each attempt, at most ten minutes.
func (e *Engine) retryBackoff(n int) time.Duration {
	d := e.cfg.Interpreter.RetryBackoff
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// RequestInterpreter starts dialling interpreter line for the visit. An
// unknown line is an InputError; a finished or cancelled visit
// visit.ErrInvalidChange; a live leg ErrLegLive.
func (e *Engine) RequestInterpreter(ctx context.Context, id, line string) (*visit.Visit, error) {
	if _, ok := e.cfg.Interpreter.Lines[line]; !ok || line == "" {
		return nil, badField("line", "must be one of the configured interpreter lines")
	}
	now := e.clock.Now()
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		if s := v.State(); !s.Open() || v.Finished() {
			return fmt.Errorf("%w: cannot dial an interpreter for a %s visit", visit.ErrInvalidChange, s)
		}
		if v.Interpreter.Live() {
			return ErrLegLive
		}
		request := 1
		if v.Interpreter != nil {
			request = v.Interpreter.Request + 1
		}
		v.Interpreter = &visit.InterpreterLeg{Line: line, State: visit.LegRequested, RequestedAt: now, Request: request}
		v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "interpreter-requested",
			Summary: "interpreter requested (line " + line + ")"})
		v.Enqueue(job(TypeInterpreterDial, QueueCritical,
			Payload{VisitID: v.ID, Purpose: legPurpose(request, 1), N: 1}, time.Time{}))
		return nil
	})
	return v, err
}

// HangUpInterpreter ends the interpreter leg, hanging up its call. Without a
// live leg it changes nothing.
func (e *Engine) HangUpInterpreter(ctx context.Context, id string) (*visit.Visit, error) {
	now := e.clock.Now()
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		e.stopLegs(v, now, "hung up on request")
		return nil
	})
	return v, err
}

// stopLegs ends a live interpreter leg inside an atomic update and enqueues
// the hang-up. A dial job that places its call after this sees the leg
// ended and hangs up at once, so no call outlives the stop.
func (e *Engine) stopLegs(v *visit.Visit, at time.Time, why string) {
	leg := v.Interpreter
	if !leg.Live() {
		return
	}
	t := at.UTC()
	leg.State, leg.EndedAt, leg.NextAttemptAt = visit.LegEnded, &t, nil
	v.Log(visit.Entry{At: at, Source: visit.SourceWorker, Type: "interpreter-ended", Summary: "interpreter leg ended: " + why})
	v.Enqueue(job(TypeInterpreterHangup, QueueCritical,
		Payload{VisitID: v.ID, Purpose: "r" + strconv.Itoa(leg.Request)}, time.Time{}))
}

// handleInterpreterDial places one attempt's call. It first claims the
// attempt in an atomic update (requested → dialing); a job that finds the
// attempt already claimed does nothing, so a retried or duplicated job never
// places a second simultaneous call. A failure before the call is placed
// gives the claim back for Asynq's retry.
func (e *Engine) handleInterpreterDial(ctx context.Context, t *asynq.Task) error {
	p, request, attempt, err := decodeLegPayload(t)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	claimed := false
	_, v, err := e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		leg := v.Interpreter
		if leg == nil || leg.Request != request || leg.State != visit.LegRequested || leg.Attempts != attempt-1 {
			return nil
		}
		if s := v.State(); !s.Open() || v.Finished() {
			return nil
		}
		leg.State, leg.Attempts, leg.CallSID, leg.NextAttemptAt = visit.LegDialing, attempt, "", nil
		v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "interpreter-dialing",
			Summary: fmt.Sprintf("dialing interpreter (attempt %d of %d)", attempt, e.cfg.Interpreter.MaxAttempts)})
		v.Enqueue(job(TypeInterpreterCheck, QueueCritical, Payload{VisitID: v.ID, Purpose: p.Purpose},
			now.Add(e.cfg.Interpreter.RingTimeout+5*time.Minute)))
		claimed = true
		return nil
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && !claimed) {
		return nil
	}
	if err != nil {
		return err
	}
	line := e.cfg.Interpreter.Lines[v.Interpreter.Line]
	if _, err := e.ensureRoom(ctx, v.ID); err != nil {
		return e.dialFailed(ctx, v.ID, request, attempt, err)
	}
	call, err := e.twilio.CreateCall(ctx, twilioapi.CreateCallParams{
		To:                   line.Phone,
		URL:                  e.callbackURL("/twilio/voice/bridge", v.ID, "leg", "interpreter"),
		StatusCallback:       e.callbackURL("/twilio/voice/status", v.ID, "attempt", strconv.Itoa(attempt)),
		StatusCallbackEvents: interpreterEvents,
		Timeout:              e.cfg.Interpreter.RingTimeout,
		MachineDetection:     "Enable",
	})
	if err != nil {
		return e.dialFailed(ctx, v.ID, request, attempt, err)
	}
	if err := e.store.IndexCall(ctx, call.SID, v.ID); err != nil {
		e.log.Warn("interpreter: index call", zap.String("visit", v.ID), zap.Error(err))
	}
	hangUp := false
	_, _, err = e.update(ctx, v.ID, "", e.clock.Now(), func(v *visit.Visit) error {
		leg := v.Interpreter
		if leg == nil || leg.Request != request || leg.Attempts != attempt {
			hangUp = true
			return nil
		}
		if leg.CallSID == "" {
			leg.CallSID = call.SID
		}
		hangUp = leg.State == visit.LegEnded
		return nil
	})
	if err != nil {
		// The call is placed; its callbacks (matched by ?visit= and
		// attempt) adopt it. Retrying would place a second one.
		e.log.Warn("interpreter: record call", zap.String("visit", v.ID), zap.Error(err))
		return nil
	}
	if hangUp {
		// Stopped while we were dialling: the hang-up job found no call.
		return jobError(e.twilio.HangUp(ctx, call.SID))
	}
	return nil
}

// dialFailed handles an attempt that could not be placed: a retryable error
// gives the claim back and lets Asynq retry the job; a permanent one counts
// as a failed attempt.
func (e *Engine) dialFailed(ctx context.Context, id string, request, attempt int, cause error) error {
	now := e.clock.Now()
	_, _, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		leg := v.Interpreter
		if leg == nil || leg.Request != request || leg.Attempts != attempt || leg.State != visit.LegDialing || leg.CallSID != "" {
			return nil
		}
		if twilioapi.Permanent(cause) {
			e.attemptFailed(v, "rejected", now)
			return nil
		}
		leg.State, leg.Attempts = visit.LegRequested, attempt-1
		return nil
	})
	if err != nil {
		return err
	}
	if twilioapi.Permanent(cause) {
		e.log.Warn("interpreter: call refused", zap.String("visit", id), zap.Error(cause))
		return nil
	}
	return cause
}

// handleInterpreterCheck fails an attempt still claimed without a call long
// after it was claimed: the worker that claimed it died before placing it.
func (e *Engine) handleInterpreterCheck(ctx context.Context, t *asynq.Task) error {
	p, request, attempt, err := decodeLegPayload(t)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		leg := v.Interpreter
		if leg != nil && leg.Request == request && leg.Attempts == attempt && leg.State == visit.LegDialing && leg.CallSID == "" {
			e.attemptFailed(v, "not placed", now)
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// attemptFailed records that the current attempt did not reach the
// interpreter: another attempt after a backoff, or, after max_attempts, the
// leg fails and the provider is told by SMS. Runs inside an update.
func (e *Engine) attemptFailed(v *visit.Visit, outcome string, at time.Time) {
	leg := v.Interpreter
	leg.LastOutcome = outcome
	if leg.Attempts < e.cfg.Interpreter.MaxAttempts {
		next := e.clock.Now().Add(e.retryBackoff(leg.Attempts)).UTC()
		leg.State, leg.NextAttemptAt = visit.LegRequested, &next
		v.Log(visit.Entry{At: at, Source: visit.SourceWorker, Type: "interpreter-retry",
			Summary: fmt.Sprintf("interpreter attempt %d: %s; retrying in %s", leg.Attempts, outcome, e.retryBackoff(leg.Attempts))})
		v.Enqueue(job(TypeInterpreterDial, QueueCritical,
			Payload{VisitID: v.ID, Purpose: legPurpose(leg.Request, leg.Attempts+1), N: leg.Attempts + 1}, next))
		return
	}
	t := at.UTC()
	leg.State, leg.EndedAt, leg.NextAttemptAt = visit.LegFailed, &t, nil
	v.Log(visit.Entry{At: at, Source: visit.SourceWorker, Type: "interpreter-failed",
		Summary: fmt.Sprintf("interpreter line not reached after %d attempts (last: %s)", leg.Attempts, outcome)})
	v.Enqueue(job(TypeInterpreterFailedSMS, QueueDefault,
		Payload{VisitID: v.ID, Purpose: "r" + strconv.Itoa(leg.Request)}, time.Time{}))
}

// interpreterCallStatus keeps the interpreter leg current from its call's
// status callbacks (inside ApplyVoice's update). A call the dial job placed
// but has not recorded yet is recognised by the ?visit= and attempt of its
// status callback URL, which only that attempt's call carries.
func (e *Engine) interpreterCallStatus(v *visit.Visit, ev VoiceEvent, at time.Time) {
	leg := v.Interpreter
	if leg == nil {
		return
	}
	if leg.CallSID != ev.CallSID {
		adopt := leg.CallSID == "" && leg.State == visit.LegDialing && ev.VisitHint == v.ID &&
			ev.LegAttempt > 0 && ev.LegAttempt == leg.Attempts
		if !adopt {
			return
		}
		leg.CallSID = ev.CallSID
	}
	if !leg.Live() {
		if terminalCall(ev.CallStatus) && leg.EndedAt == nil {
			t := at.UTC()
			leg.EndedAt = &t
		}
		return
	}
	machine := strings.HasPrefix(ev.AnsweredBy, "machine_") || ev.AnsweredBy == "fax"
	switch {
	case ev.CallStatus == "ringing":
		if leg.State == visit.LegDialing {
			leg.State = visit.LegRinging
		}
	case ev.CallStatus == "in-progress":
		if leg.State == visit.LegDialing || leg.State == visit.LegRinging {
			leg.State = visit.LegAnswered
		}
	case terminalCall(ev.CallStatus):
		if leg.State == visit.LegBridged {
			t := at.UTC()
			leg.State, leg.EndedAt = visit.LegEnded, &t
			v.Log(visit.Entry{At: at, Source: visit.SourceVoice, Type: "interpreter-ended", Summary: "interpreter hung up"})
			return
		}
		outcome := ev.CallStatus
		switch {
		case machine:
			outcome = "machine"
		case ev.CallStatus == "completed":
			outcome = "hung up before bridging"
		}
		e.attemptFailed(v, outcome, at)
	}
}

func terminalCall(status string) bool {
	switch status {
	case "completed", "busy", "no-answer", "failed", "canceled":
		return true
	}
	return false
}

// interpreterParticipant marks the leg bridged when the interpreter's
// identity connects to the room (inside ApplyVideo's update), and hangs up
// legs when the room ends without a state change (a no-show room closing).
func (e *Engine) interpreterParticipant(v *visit.Visit, ev VideoEvent, at time.Time) {
	leg := v.Interpreter
	switch ev.Event {
	case EventParticipantConnected:
		if ev.ParticipantIdentity != v.InterpreterIdentity() || !leg.Live() || leg.State == visit.LegBridged {
			return
		}
		t := at.UTC()
		leg.State, leg.BridgedAt = visit.LegBridged, &t
		v.Log(visit.Entry{At: at, Source: visit.SourceVideo, Type: "interpreter-bridged", Summary: "interpreter bridged into the room"})
	case EventRoomEnded:
		e.stopLegs(v, at, "room ended")
	}
}

// InterpreterTwiML answers the interpreter call's TwiML request: play the
// line's IVR path, then bridge into the room. A call that no longer belongs
// to a live leg, or that a machine answered, is hung up.
func (e *Engine) InterpreterTwiML(ctx context.Context, id, callSID, answeredBy string) (string, error) {
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return twiml.HangUp(), nil
	}
	if err != nil {
		return "", err
	}
	leg := v.Interpreter
	switch {
	case !leg.Live(), leg.State == visit.LegBridged, !v.State().Open(), v.Finished(),
		leg.CallSID != "" && leg.CallSID != callSID,
		strings.HasPrefix(answeredBy, "machine_"), answeredBy == "fax":
		return twiml.HangUp(), nil
	}
	line := e.cfg.Interpreter.Lines[leg.Line]
	return twiml.Bridge(line.IVR, v.Room.Name, v.InterpreterIdentity()), nil
}

func (e *Engine) handleInterpreterHangup(ctx context.Context, t *asynq.Task) error {
	p, v, err := e.jobVisit(ctx, t)
	if v == nil {
		return err
	}
	leg := v.Interpreter
	if leg == nil || "r"+strconv.Itoa(leg.Request) != p.Purpose || leg.CallSID == "" {
		return nil
	}
	return jobError(e.twilio.HangUp(ctx, leg.CallSID))
}

// localTime formats t in the visit's time zone for people to read.
func localTime(v *visit.Visit, t time.Time) string {
	if loc, err := time.LoadLocation(v.Timezone); err == nil {
		t = t.In(loc)
	}
	return t.Format("Monday, January 2 at 3:04 PM MST")
}

// handleInterpreterFailedSMS tells the provider the interpreter line could
// not be reached, once per request.
func (e *Engine) handleInterpreterFailedSMS(ctx context.Context, t *asynq.Task) error {
	p, v, err := e.jobVisit(ctx, t)
	if v == nil {
		return err
	}
	purpose := "sms:interpreter-failed:" + p.Purpose
	leg := v.Interpreter
	if leg == nil || "r"+strconv.Itoa(leg.Request) != p.Purpose || leg.State != visit.LegFailed || v.IsDone(purpose) {
		return nil
	}
	summary := "provider told by SMS that the interpreter line was not reached"
	if v.Provider.Phone == "" {
		summary = "provider has no phone number: interpreter failure not sent"
	} else {
		data := e.visitText(v, "")
		data.Line, data.Attempts = leg.Line, leg.Attempts
		body, err := renderText("interpreter_failed", e.cfg.Visits.Templates.InterpreterFailed, data)
		if err != nil {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		if _, err := e.twilio.SendSMS(ctx, twilioapi.SendSMSParams{To: v.Provider.Phone, Body: body}); err != nil {
			if !twilioapi.Permanent(err) {
				return err
			}
			summary = "interpreter failure SMS to the provider refused: " + strconv.Itoa(twilioapi.Code(err))
		}
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		if v.MarkDone(purpose, now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "interpreter-failed-sms", Summary: summary})
		}
		return nil
	})
	return err
}

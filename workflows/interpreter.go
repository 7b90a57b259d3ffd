package workflows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/twiml"
)

// interpreterEvents are the call progress events we subscribe to.
var interpreterEvents = []string{"initiated", "ringing", "answered", "completed"}

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
// unknown line is an InputError; a finished visit visit.ErrInvalidChange; a
// live leg visit.ErrLegLive.
func (e *Engine) RequestInterpreter(ctx context.Context, id, line string) (*visit.Visit, error) {
	if _, ok := e.cfg.Interpreter.Lines[line]; !ok || line == "" {
		return nil, badField("line", "must be one of the configured interpreter lines")
	}
	now := e.clock.Now()
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		if _, err := v.RequestInterpreter(line, now); err != nil {
			return err
		}
		v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "interpreter-requested",
			Summary: "interpreter requested (line " + line + ")"})
		v.Enqueue(dialJob(v, 1, time.Time{}))
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
	if v.Interpreter.Stop(at) != nil {
		return // no live leg
	}
	v.Log(visit.Entry{At: at, Source: visit.SourceWorker, Type: "interpreter-ended", Summary: "interpreter leg ended: " + why})
	v.Enqueue(hangupJob(v))
}

// handleInterpreterDial places one attempt's call. It first claims the
// attempt in an atomic update (requested → dialing); a job that finds the
// attempt already claimed does nothing, so a retried or duplicated job never
// places a second simultaneous call. A failure before the call is placed
// gives the claim back for Asynq's retry.
func (e *Engine) handleInterpreterDial(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	claimed := false
	_, v, err := e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		claimed = false
		if v.Finished() || v.Interpreter.Claim(p.Request, p.Attempt) != nil {
			return nil // stale: another attempt, a stopped leg, a visit over
		}
		v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "interpreter-dialing",
			Summary: fmt.Sprintf("dialing interpreter (attempt %d of %d)", p.Attempt, e.cfg.Interpreter.MaxAttempts)})
		v.Enqueue(dialCheckJob(v, p.Attempt, now.Add(e.cfg.Interpreter.RingTimeout+5*time.Minute)))
		claimed = true
		return nil
	})
	if errors.Is(err, visit.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !claimed {
		// Not ours to dial, unless this attempt's earlier try got no clear
		// answer from Twilio: then settle it (settle.go) before anything else.
		if v != nil && v.Interpreter.Unplaced(p.Request, p.Attempt) && v.Extra[dialClaimKey(p)] != "" {
			redial, err := e.settleDial(ctx, p, v)
			if err != nil || !redial {
				return err
			}
			return e.handleInterpreterDial(ctx, t)
		}
		return nil
	}
	line := e.cfg.Interpreter.Lines[v.Interpreter.Line]
	if _, err := e.ensureRoom(ctx, v.ID); err != nil {
		return e.dialFailed(ctx, p, err, time.Time{})
	}
	// Answering-machine detection only where the line asks for it: an
	// interpreter service's IVR menu is long recorded speech, which Twilio
	// judges a machine.
	amd := ""
	if line.AMD {
		amd = "Enable"
	}
	requested := e.clock.Now()
	call, err := e.twilio.CreateCall(ctx, twilioapi.CreateCallParams{
		To:                   line.Phone,
		URL:                  e.voiceURL("/twilio/voice/bridge", v.ID, "leg", "interpreter"),
		StatusCallback:       e.voiceURL("/twilio/voice/status", v.ID, "attempt", strconv.Itoa(p.Attempt)),
		StatusCallbackEvents: interpreterEvents,
		Timeout:              e.cfg.Interpreter.RingTimeout,
		MachineDetection:     amd,
	})
	if err != nil {
		return e.dialFailed(ctx, p, err, requested)
	}
	if err := e.store.IndexCall(ctx, call.SID, v.ID); err != nil {
		e.log.Warn("interpreter: index call", zap.String("visit", v.ID), zap.Error(err))
	}
	hangUp := false
	_, _, err = e.update(ctx, v.ID, "", e.clock.Now(), func(v *visit.Visit) error {
		hangUp = v.Interpreter.RecordCall(p.Request, p.Attempt, call.SID)
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
		return e.twilio.HangUp(ctx, call.SID)
	}
	return nil
}

// dialFailed handles an attempt whose call was not placed, or whose Create
// Call (requested at requested; zero when it never got that far) failed: a
// final refusal counts as a failed attempt; a transient one gives the claim
// back and lets Asynq retry the job. An ambiguous one (a 5xx or a timeout
// after the request left) may have placed the call: the attempt stays
// dialing, never dialled blindly again; the call's status callbacks (which
// name the attempt) adopt it, or the retry asks Twilio (settleDial).
func (e *Engine) dialFailed(ctx context.Context, p Payload, cause error, requested time.Time) error {
	now := e.clock.Now()
	class := twilioapi.ClassOf(cause)
	unknown := !requested.IsZero() && class == twilioapi.ClassAmbiguous
	_, _, err := e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		leg := v.Interpreter
		switch {
		case !leg.Unplaced(p.Request, p.Attempt):
			return nil
		case class == twilioapi.ClassFinal:
			e.attemptFailed(v, "rejected", now)
		case unknown:
			if v.Extra == nil {
				v.Extra = map[string]string{}
			}
			v.Extra[dialClaimKey(p)] = requested.UTC().Format(time.RFC3339Nano)
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "interpreter-dial-unknown",
				Summary: fmt.Sprintf("interpreter call (attempt %d) outcome unknown: %s after the request left; not dialling again until its callbacks or Twilio's call list tell",
					p.Attempt, twilioFailureText(cause))})
		default:
			_ = leg.GiveBack(p.Request, p.Attempt)
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case class == twilioapi.ClassFinal:
		e.log.Warn("interpreter: call refused", zap.String("visit", p.VisitID), zap.Error(cause))
		return nil
	case unknown:
		// Retried: the retry finds the attempt claimed and, once the claim
		// is stale, asks Twilio whether the call exists (settleDial).
		e.log.Warn("interpreter: call outcome unknown", zap.String("visit", p.VisitID), zap.Error(cause))
	}
	return cause
}

// handleInterpreterCheck fails an attempt still claimed without a call long
// after it was claimed: the worker that claimed it died before placing it.
func (e *Engine) handleInterpreterCheck(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		if v.Interpreter.Unplaced(p.Request, p.Attempt) {
			e.attemptFailed(v, "not placed", now)
		}
		return nil
	})
	return e.ignoreGone(t.Type(), p.VisitID, err)
}

// attemptFailed records that the current attempt did not reach the
// interpreter: another attempt after a backoff, or, after max_attempts, the
// leg fails and the provider is told by SMS. Runs inside an update.
func (e *Engine) attemptFailed(v *visit.Visit, outcome string, at time.Time) {
	leg := v.Interpreter
	if leg == nil {
		return
	}
	backoff := e.retryBackoff(leg.Attempts)
	next := e.clock.Now().Add(backoff)
	retry, err := leg.AttemptFailed(outcome, e.cfg.Interpreter.MaxAttempts, next, at)
	switch {
	case err != nil:
		return
	case retry:
		v.Log(visit.Entry{At: at, Source: visit.SourceWorker, Type: "interpreter-retry",
			Summary: fmt.Sprintf("interpreter attempt %d: %s; retrying in %s", leg.Attempts, outcome, backoff)})
		v.Enqueue(dialJob(v, leg.Attempts+1, next.UTC()))
	default:
		v.Log(visit.Entry{At: at, Source: visit.SourceWorker, Type: "interpreter-failed",
			Summary: fmt.Sprintf("interpreter line not reached after %d attempts (last: %s)", leg.Attempts, outcome)})
		v.Enqueue(interpreterFailedSMSJob(v))
	}
}

// interpreterCallStatus keeps the interpreter leg current from its call's
// status callbacks (inside ApplyVoice's update). A call the dial job placed
// but has not recorded yet is recognised by the ?visit= and attempt of its
// status callback URL, which only that attempt's call carries.
func (e *Engine) interpreterCallStatus(v *visit.Visit, ev VoiceEvent, at time.Time) {
	leg := v.Interpreter
	attempt := ev.LegAttempt
	if ev.VisitHint != v.ID {
		attempt = 0 // only a callback URL of ours names the attempt to adopt
	}
	if !leg.AdoptCall(ev.CallSID, attempt) {
		return
	}
	switch outcome, why := leg.Progress(ev.CallStatus, ev.AnsweredBy, at); outcome {
	case visit.CallHungUp:
		v.Log(visit.Entry{At: at, Source: visit.SourceVoice, Type: "interpreter-ended", Summary: "interpreter hung up"})
	case visit.CallAttemptFailed:
		e.attemptFailed(v, why, at)
	}
}

// interpreterParticipant marks the leg bridged when the interpreter's
// identity connects to the room (inside ApplyVideo's update), and hangs up
// legs when the room ends without a state change (a no-show room closing).
func (e *Engine) interpreterParticipant(v *visit.Visit, ev VideoEvent, at time.Time) {
	switch ev.Event {
	case EventParticipantConnected:
		if ev.ParticipantIdentity == v.InterpreterIdentity() && v.Interpreter.Bridge(at) == nil {
			v.Log(visit.Entry{At: at, Source: visit.SourceVideo, Type: "interpreter-bridged", Summary: "interpreter bridged into the room"})
		}
	case EventRoomEnded:
		e.stopLegs(v, at, "room ended")
	}
}

// InterpreterTwiML answers the interpreter call's TwiML request: play the
// line's IVR path, then bridge into the room. A call that no longer belongs
// to a live leg, or that a machine answered, is hung up.
func (e *Engine) InterpreterTwiML(ctx context.Context, id, callSID, answeredBy string) (string, error) {
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, visit.ErrNotFound) {
		return twiml.HangUp(), nil
	}
	if err != nil {
		return "", err
	}
	if v.Finished() || !v.Interpreter.WantsBridgeTwiML(callSID, answeredBy) {
		return twiml.HangUp(), nil
	}
	line := e.cfg.Interpreter.Lines[v.Interpreter.Line]
	return twiml.Bridge(line.IVR, v.Room.Name, v.InterpreterIdentity()), nil
}

func (e *Engine) handleInterpreterHangup(ctx context.Context, t *asynq.Task) error {
	p, v, err := e.jobVisit(ctx, t)
	if v == nil {
		return err
	}
	leg := v.Interpreter
	if leg == nil || leg.Request != p.Request || leg.CallSID == "" {
		return nil
	}
	return e.twilio.HangUp(ctx, leg.CallSID)
}

// localTime formats t in the visit's time zone for people to read.
func localTime(v *visit.Visit, t time.Time) string {
	if loc, err := time.LoadLocation(v.Timezone); err == nil {
		t = t.In(loc)
	}
	return t.Format("Monday, January 2 at 3:04 PM MST")
}

// handleInterpreterFailedSMS tells the provider the interpreter line could
// not be reached, once per request (sendOnce: claimed, and settled by asking
// Twilio when its answer is lost).
func (e *Engine) handleInterpreterFailedSMS(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: "interpreter-failed:" + requestPurpose(p.Request),
		to: visit.RoleProvider, template: e.cfg.Visits.Templates.InterpreterFailed,
		applies: func(v *visit.Visit) bool {
			leg := v.Interpreter
			return leg != nil && leg.Request == p.Request && leg.State == visit.LegFailed
		},
		fill: func(v *visit.Visit, t *smsText) { t.Line, t.Attempts = v.Interpreter.Line, v.Interpreter.Attempts },
	})
}

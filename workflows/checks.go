package workflows

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

// The checks a visit's timers run: the no-show deadline, the provider
// running late, and the patient texts after completion or cancellation.

// handleNoShowCheck records that the no-show deadline of the visit's current
// schedule passed: a patient who never joined makes it no_show.
func (e *Engine) handleNoShowCheck(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	if err := e.askTwilioWhoIsIn(ctx, p); err != nil {
		return err
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		if !currentSchedule(v, p.Schedule) || v.Finished() {
			return nil
		}
		if v.NoShowDeadlinePassed(now) && v.State() == visit.NoShow {
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "no-show",
				Summary: "the patient did not join within " + e.cfg.Visits.NoShowAfter.String()})
		}
		return nil
	})
	return e.ignoreGone(t.Type(), p.VisitID, err)
}

// askTwilioWhoIsIn reads the visit's room back from Twilio before a no-show
// is declared: a patient whose participant-connected callback was lost is in
// the room, not a no-show. A transient failure retries the check; when the
// retries are used up, or Twilio says the room is unknown, the callbacks
// decide alone.
func (e *Engine) askTwilioWhoIsIn(ctx context.Context, p Payload) error {
	if e.twilio == nil {
		return nil
	}
	v, err := e.store.Get(ctx, p.VisitID)
	if errors.Is(err, visit.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// v is this check's own copy: recording the deadline on it shows what
	// the callbacks alone would make of the visit.
	if !currentSchedule(v, p.Schedule) || v.Finished() || v.Room.SID == "" ||
		!v.NoShowDeadlinePassed(e.clock.Now()) || v.State() != visit.NoShow {
		return nil
	}
	_, _, err = e.reconcileVisit(ctx, v)
	if err == nil {
		return nil
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if !twilioapi.Permanent(err) && retried < maxRetry {
		return fmt.Errorf("no-show check for %s: asking Twilio who is in the room: %w", p.VisitID, err)
	}
	e.log.Warn("no-show check: could not ask Twilio who is in the room; deciding on the callbacks received",
		zap.String("visit", p.VisitID), zap.Int("code", twilioapi.Code(err)), zap.Error(err))
	return nil
}

// handleProviderLate texts the provider, then the patient, when the patient
// is still in the waiting spell that scheduled this check.
func (e *Engine) handleProviderLate(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	// Still in the same waiting spell: no transition since this check was made.
	stillWaiting := func(v *visit.Visit) bool { return v.Transitions == p.Transition && v.State() == visit.Waiting }
	if err := e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: "provider-late", to: visit.RoleProvider,
		template: e.cfg.Visits.Templates.ProviderLate, applies: stillWaiting, timeSensitive: true}); err != nil {
		return err
	}
	return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: "patient-late", to: visit.RolePatient,
		template: e.cfg.Visits.Templates.PatientLate, applies: stillWaiting, timeSensitive: true})
}

// handleFollowup sends the follow-up SMS of a completed visit.
func (e *Engine) handleFollowup(ctx context.Context, t *asynq.Task) error {
	return e.sendPatientOnce(ctx, t, "followup", e.cfg.Visits.Templates.Followup, visit.Completed)
}

// handleCancelSMS tells the patient their visit was cancelled.
func (e *Engine) handleCancelSMS(ctx context.Context, t *asynq.Task) error {
	return e.sendPatientOnce(ctx, t, "cancelled", e.cfg.Visits.Templates.Cancelled, visit.Cancelled)
}

// sendPatientOnce texts the patient once for purpose, with template, only
// while the visit is in state want.
func (e *Engine) sendPatientOnce(ctx context.Context, t *asynq.Task, purpose, template string, want visit.State) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: purpose, to: visit.RolePatient,
		template: template, applies: func(v *visit.Visit) bool { return v.State() == want }})
}

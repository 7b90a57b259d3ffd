package workflows

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/visit"
)

// reconnectGrace is how soon after a wait ended a new one counts as the same
// waiting spell (a patient whose connection dropped and came back): the
// provider was told already and is not texted again.
const reconnectGrace = time.Minute

// tellProviderPatientWaiting texts the provider that the patient entered
// the waiting room, once per waiting spell. It runs in the transition into
// waiting at the time of the fact that caused it.
func tellProviderPatientWaiting(_ *Engine, v *visit.Visit, at time.Time) {
	if v.WaitingDuring(at.Add(-reconnectGrace), at) {
		return // a reconnect: the same spell
	}
	v.Enqueue(patientWaitingJob(v))
}

// handlePatientWaitingSMS sends the provider the patient_waiting SMS, with
// the provider's own join link, while the patient is still waiting.
func (e *Engine) handlePatientWaitingSMS(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: fmt.Sprintf("patient-waiting:t%d", p.Transition),
		to: visit.RoleProvider, template: e.cfg.Visits.Templates.PatientWaiting,
		applies: func(v *visit.Visit) bool { return v.State() == visit.Waiting }})
}

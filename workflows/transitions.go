package workflows

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/visit"
)

// effect records what entering a state causes. It runs inside the atomic
// update that made the transition, so it only records (v.Enqueue, v.Log):
// the jobs commit with the fact, and do the I/O when they run.
type effect func(e *Engine, v *visit.Visit, at time.Time)

// onEnter is what entering each state causes. A state not listed causes
// nothing: the transition itself is already in the timeline, whose
// "state-changed" rows are derived when it is read (visit.WithStates), so a
// transition costs no job of its own.
//
// "What does a patient joining cause?": callbacks.go records the fact,
// internal/visit derives waiting (or in_progress), and this table says the
// rest.
var onEnter = map[visit.State][]effect{
	visit.Waiting:   {checkProviderLate, tellProviderPatientWaiting},
	visit.Completed: {endRoom, sendFollowup, stopLegsWhenFinished},
	visit.NoShow:    {stopLegsWhenFinished},
	visit.Cancelled: {endRoom, dropTimers, sendCancelNotice, stopLegsWhenFinished},
}

// transition records what entering the new state causes. Transitions
// counts them: jobs that belong to one transition carry its number.
func (e *Engine) transition(v *visit.Visit, to visit.State, at time.Time) {
	v.Transitions++
	for _, do := range onEnter[to] {
		do(e, v, at)
	}
}

// checkProviderLate schedules the provider-late check provider_late_after
// into the patient's wait (counted from scheduled_at when they came early).
func checkProviderLate(e *Engine, v *visit.Visit, at time.Time) {
	since := v.ScheduledAt
	if at.After(since) {
		since = at
	}
	v.Enqueue(providerLateJob(v, since.Add(e.cfg.Visits.ProviderLateAfter)))
}

// endRoom ends the room through a job, unless Twilio already reported it
// ended (the usual way a visit completes): that job would do nothing. A
// room without a SID yet still gets the job, as its creation may be in
// flight. An engine without Twilio (some tests) makes and ends no rooms.
func endRoom(e *Engine, v *visit.Visit, _ time.Time) {
	if e.twilio != nil && !v.IsDone(doneRoomEndedByTwilio) && !v.IsDone(doneRoomEndRequested) {
		v.Enqueue(roomEndJob(v))
	}
}

func sendFollowup(e *Engine, v *visit.Visit, at time.Time) {
	v.Enqueue(followupJob(v, at.Add(e.cfg.Visits.FollowupAfter)))
}

func sendCancelNotice(e *Engine, v *visit.Visit, _ time.Time) {
	if e.cfg.Visits.CancelSMS {
		v.Enqueue(cancelSMSJob(v))
	}
}

// dropTimers deletes the current schedule's pending reminders and checks.
func dropTimers(_ *Engine, v *visit.Visit, _ time.Time) { dropScheduleTimers(v) }

// stopLegsWhenFinished hangs up a live interpreter leg once the visit is
// over (a no-show is over only when its room has ended too).
func stopLegsWhenFinished(e *Engine, v *visit.Visit, at time.Time) {
	if v.Finished() {
		e.stopLegs(v, at, "visit "+string(v.State()))
	}
}

// schedule records the jobs a visit's current schedule needs: its room
// (room_lead ahead), its reminders and its no-show check. It runs inside
// the atomic create and every reschedule.
func (e *Engine) schedule(v *visit.Visit, now time.Time) {
	if e.twilio != nil {
		e.scheduleRoom(v, now)
	}
	e.scheduleTimers(v, now)
}

// ignoreGone turns "the visit was purged" into success: the job no longer applies.
func (e *Engine) ignoreGone(typ, visitID string, err error) error {
	if errors.Is(err, visit.ErrNotFound) {
		e.log.Info("job for a visit that is gone", zap.String("type", typ), zap.String("visit", visitID))
		return nil
	}
	return err
}

// handleStateChanged acknowledges a visit:state-changed task enqueued by an
// earlier version, which recorded each transition through a job of its own.
// The timeline now derives those rows when it is read, so the task has
// nothing left to do; it is kept so such tasks drain instead of failing.
func (e *Engine) handleStateChanged(context.Context, *asynq.Task) error { return nil }

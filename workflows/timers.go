package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/visit"
)

// Timer task types (contract §6).
const (
	// TypeReminderSend sends one reminder SMS (Purpose "r<offset>:s<schedule>").
	TypeReminderSend = "reminder:send"
	// TypeNoShowCheck marks a visit no-show when the patient never joined.
	TypeNoShowCheck = "visit:no-show-check"
	// TypeProviderLateCheck tells provider and patient when the patient has
	// waited provider_late_after without the provider.
	TypeProviderLateCheck = "visit:provider-late-check"
	// TypeFollowupSend sends the follow-up SMS after completion.
	TypeFollowupSend = "followup:send"
	// TypeCancelSMS tells the patient the visit was cancelled (visits.cancel_sms).
	TypeCancelSMS = "visit:cancel-sms"
)

// DelayedTaskCheckInterval is how often Asynq workers move due scheduled
// tasks (reminders, checks) to their queue. Asynq's default of 5 s made a
// reminder 3.7 s late at the median (docs/benchmarks.md); 1 s costs one
// small Redis script per queue per second per worker process.
const DelayedTaskCheckInterval = time.Second

// timersKey is the Extra entry listing the task IDs of the current
// schedule's pending timers, so a reschedule or cancel can delete them even
// when the configured offsets changed since.
const timersKey = "timers"

// enableTimers wires reminders, the no-show, provider-late and follow-up
// checks, and cancel/reschedule clean-up into the engine.
func (e *Engine) enableTimers() {
	e.OnSchedule(e.scheduleTimers)
	e.OnTransition(e.timerTransitions)
	e.Handle(TypeReminderSend, e.handleReminder)
	e.Handle(TypeNoShowCheck, e.handleNoShowCheck)
	e.Handle(TypeProviderLateCheck, e.handleProviderLate)
	e.Handle(TypeFollowupSend, e.patientSMSJob("followup", e.cfg.Visits.Templates.Followup, visit.Completed))
	e.Handle(TypeCancelSMS, e.patientSMSJob("cancelled", e.cfg.Visits.Templates.Cancelled, visit.Cancelled))
	e.Handle(TypeRetentionPurge, e.handleRetentionPurge)
}

// schedulePurpose names the current schedule generation in purposes and task IDs.
func schedulePurpose(v *visit.Visit) string { return fmt.Sprintf("s%d", v.Schedule) }

// scheduleTimers records the reminder and no-show jobs of the visit's current
// schedule (runs inside create and reschedule).
func (e *Engine) scheduleTimers(v *visit.Visit, now time.Time) {
	loc, err := loadZone(v.Timezone)
	if err != nil {
		loc = time.UTC
	}
	gen := schedulePurpose(v)
	var ids []string
	add := func(j visit.Job) {
		v.Enqueue(j)
		ids = append(ids, j.ID)
	}
	plan := PlanReminders(v.ScheduledAt, now, e.cfg.Visits.ReminderOffsets, e.cfg.Visits.QuietHours, loc)
	for _, r := range plan {
		if r.Skipped != "" {
			v.Log(visit.Entry{At: now, Source: visit.SourceScheduler, Type: "reminder-skipped",
				Summary: "reminder " + r.Name + ": " + r.Skipped})
			continue
		}
		add(job(TypeReminderSend, QueueDefault,
			Payload{VisitID: v.ID, Purpose: r.Name + ":" + gen, N: v.Schedule}, r.At))
		if r.Moved {
			v.Log(visit.Entry{At: now, Source: visit.SourceScheduler, Type: "reminder-moved",
				Summary: "reminder " + r.Name + " moved before quiet hours to " + r.At.In(loc).Format(time.RFC3339)})
		}
	}
	add(job(TypeNoShowCheck, QueueDefault, Payload{VisitID: v.ID, Purpose: gen, N: v.Schedule},
		v.ScheduledAt.Add(e.cfg.Visits.NoShowAfter)))
	if v.Extra == nil {
		v.Extra = map[string]string{}
	}
	v.Extra[timersKey] = strings.Join(ids, " ")
}

// dropTimers records outbox deletions of the current schedule's timers.
func dropTimers(v *visit.Visit) {
	for _, id := range strings.Fields(v.Extra[timersKey]) {
		v.Enqueue(visit.Job{ID: id, Queue: QueueDefault, Delete: true})
	}
	delete(v.Extra, timersKey)
}

// Reminder is one planned reminder.
type Reminder struct {
	Name    string    // "starting-soon" or "r<offset>", e.g. "r24h0m0s"
	At      time.Time // when it is sent
	Moved   bool      // moved earlier out of quiet hours
	Skipped string    // why it is not sent ("" = sent)
}

// startingSoon names the one message of a visit created inside its smallest offset.
const startingSoon = "starting-soon"

// PlanReminders decides when each reminder of a visit at scheduledAt is
// sent, seen from now: offsets already past are skipped; a reminder due in
// quiet hours (local time in loc) moves to one minute before that quiet
// period began; if that moment is past too, the reminder goes at the end of
// the quiet period when that is still before the visit, else it is skipped
// and says why. Two reminders landing on the same moment are sent once. A
// visit created closer to its start than the smallest offset gets one
// "starting-soon" message now.
func PlanReminders(scheduledAt, now time.Time, offsets []time.Duration, quiet config.QuietHours, loc *time.Location) []Reminder {
	if len(offsets) == 0 || !scheduledAt.After(now) {
		return nil
	}
	sorted := append([]time.Duration(nil), offsets...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] > sorted[j] })
	var out []Reminder
	taken := map[time.Time]bool{}
	for _, off := range sorted {
		due := scheduledAt.Add(-off)
		if !due.After(now) {
			continue
		}
		r := Reminder{Name: "r" + off.String(), At: due}
		if quiet.Contains(due.In(loc)) {
			start, end := quietPeriod(due.In(loc), quiet)
			r.Moved = true
			r.At = start.Add(-time.Minute)
			if !r.At.After(now) {
				r.At = end
				if !end.Before(scheduledAt) {
					r.Skipped = "due in quiet hours and the quiet period lasts until the visit"
				}
			}
		}
		if r.Skipped == "" && taken[r.At] {
			r.Skipped = "falls on the same moment as an earlier reminder"
		}
		taken[r.At] = true
		out = append(out, r)
	}
	if scheduledAt.Sub(now) < sorted[len(sorted)-1] {
		out = append(out, Reminder{Name: startingSoon, At: now})
	}
	return out
}

// quietPeriod returns the start and end instants of the quiet period that
// contains local time t. Wall-clock times are resolved in t's zone, so a
// daylight-saving change inside the period is accounted for.
func quietPeriod(t time.Time, q config.QuietHours) (start, end time.Time) {
	y, m, d := t.Date()
	at := func(day int, off time.Duration) time.Time {
		return time.Date(y, m, day, int(off/time.Hour), int(off%time.Hour/time.Minute), 0, 0, t.Location())
	}
	sinceMidnight := time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
	startDay := d
	if q.Start > q.End && sinceMidnight < q.End {
		startDay = d - 1 // the period began yesterday evening
	}
	start = at(startDay, q.Start)
	endDay := startDay
	if q.Start > q.End {
		endDay = startDay + 1
	}
	return start, at(endDay, q.End)
}

// timerTransitions schedules the checks a state change calls for.
func (e *Engine) timerTransitions(v *visit.Visit, from, to visit.State, at time.Time) {
	switch to {
	case visit.Waiting:
		due := later(at, v.ScheduledAt).Add(e.cfg.Visits.ProviderLateAfter)
		v.Enqueue(job(TypeProviderLateCheck, QueueDefault,
			Payload{VisitID: v.ID, Purpose: fmt.Sprintf("t%d", v.Transitions), N: v.Transitions}, due))
	case visit.Completed:
		v.Enqueue(job(TypeFollowupSend, QueueDefault, Payload{VisitID: v.ID, Purpose: "followup"},
			at.Add(e.cfg.Visits.FollowupAfter)))
	case visit.Cancelled:
		dropTimers(v)
		if e.cfg.Visits.CancelSMS {
			v.Enqueue(job(TypeCancelSMS, QueueDefault, Payload{VisitID: v.ID, Purpose: "cancelled"}, time.Time{}))
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// PatchInput is the body of PATCH /v1/visits/{id}: every field optional.
type PatchInput struct {
	ScheduledAt *string      `json:"scheduled_at"`
	Timezone    *string      `json:"timezone"`
	Provider    *PersonPatch `json:"provider"`
	Patient     *PersonPatch `json:"patient"`
}

// PersonPatch updates a person's contact details (not the identity).
type PersonPatch struct {
	Name  *string `json:"name"`
	Phone *string `json:"phone"`
}

// UpdateVisit reschedules a visit and/or updates contact details. A new
// scheduled_at or timezone starts a new schedule generation: the old
// schedule's reminders and checks are deleted from the queues (and would do
// nothing if they ran anyway) and the new ones are enqueued. Only a visit
// nobody has joined yet can be rescheduled (visit.ErrInvalidChange).
func (e *Engine) UpdateVisit(ctx context.Context, id string, in PatchInput) (*visit.Visit, error) {
	var at *time.Time
	if in.ScheduledAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ScheduledAt)
		if err != nil {
			return nil, badField("scheduled_at", "must be an RFC 3339 time like 2026-12-01T15:00:00Z")
		}
		t = t.UTC()
		at = &t
	}
	if in.Timezone != nil {
		if _, err := loadZone(*in.Timezone); err != nil || *in.Timezone == "" {
			return nil, badField("timezone", "must be an IANA time zone like America/New_York")
		}
	}
	for _, p := range []struct {
		field string
		p     *PersonPatch
	}{{"provider", in.Provider}, {"patient", in.Patient}} {
		if p.p != nil && p.p.Phone != nil && *p.p.Phone != "" && !visit.ValidPhone(*p.p.Phone) {
			return nil, badField(p.field+".phone", "must be an E.164 number like +15551230001")
		}
	}
	now := e.clock.Now()
	rescheduled := false
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		applyPerson(&v.Provider, in.Provider)
		applyPerson(&v.Patient, in.Patient)
		newAt, newTZ := v.ScheduledAt, v.Timezone
		if at != nil {
			newAt = *at
		}
		if in.Timezone != nil {
			newTZ = *in.Timezone
		}
		if newAt.Equal(v.ScheduledAt) && newTZ == v.Timezone {
			return nil
		}
		if s := v.State(); s != visit.Scheduled {
			return fmt.Errorf("%w: cannot reschedule a %s visit", visit.ErrInvalidChange, s)
		}
		old := v.ScheduledAt
		dropTimers(v)
		v.Schedule++
		v.ScheduledAt, v.Timezone = newAt, newTZ
		v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "rescheduled",
			Summary: "rescheduled from " + old.Format(time.RFC3339) + " to " + newAt.Format(time.RFC3339)})
		for _, h := range e.scheduleHooks {
			h(v, now)
		}
		rescheduled = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rescheduled {
		if err := e.store.Reschedule(ctx, id, v.ScheduledAt); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func applyPerson(p *visit.Person, in *PersonPatch) {
	if in == nil {
		return
	}
	if in.Name != nil {
		p.Name = *in.Name
	}
	if in.Phone != nil {
		p.Phone = *in.Phone
	}
}

// currentSchedule reports whether a job made for schedule generation n still
// applies: a reschedule moved on otherwise.
func currentSchedule(v *visit.Visit, n int) bool { return v.Schedule == n }

func (e *Engine) handleReminder(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	name, _, _ := strings.Cut(p.Purpose, ":")
	tmpl := e.cfg.Visits.Templates.Reminder
	if name == startingSoon {
		tmpl = e.cfg.Visits.Templates.StartingSoon
	}
	return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: "reminder:" + p.Purpose, to: visit.RolePatient, template: tmpl,
		applies: func(v *visit.Visit) bool {
			// Only until the patient is in the room (an early provider does not stop it).
			s := v.State()
			return currentSchedule(v, p.N) && (s == visit.Scheduled || s == visit.ProviderWaiting)
		}})
}

func (e *Engine) handleNoShowCheck(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		if !currentSchedule(v, p.N) || !v.State().Open() {
			return nil
		}
		if v.NoShowDeadlinePassed(now) && v.State() == visit.NoShow {
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "no-show",
				Summary: "the patient did not join within " + e.cfg.Visits.NoShowAfter.String()})
		}
		return nil
	})
	return ignoreGone(e, t, p, err)
}

func (e *Engine) handleProviderLate(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	// Still in the same waiting spell: no transition since this check was made.
	stillWaiting := func(v *visit.Visit) bool { return v.Transitions == p.N && v.State() == visit.Waiting }
	if err := e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: "provider-late", to: visit.RoleProvider,
		template: e.cfg.Visits.Templates.ProviderLate, applies: stillWaiting}); err != nil {
		return err
	}
	return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: "patient-late", to: visit.RolePatient,
		template: e.cfg.Visits.Templates.PatientLate, applies: stillWaiting})
}

// patientSMSJob is the handler of a task that texts the patient once,
// with template, only while the visit is in state want (the follow-up after
// completion, the notice after a cancel).
func (e *Engine) patientSMSJob(purpose, template string, want visit.State) func(context.Context, *asynq.Task) error {
	return func(ctx context.Context, t *asynq.Task) error {
		p, err := decodePayload(t)
		if err != nil {
			return err
		}
		return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: purpose, to: visit.RolePatient,
			template: template, applies: func(v *visit.Visit) bool { return v.State() == want }})
	}
}

// ignoreGone turns "the visit was purged" into success: the job no longer applies.
func ignoreGone(e *Engine, t *asynq.Task, p Payload, err error) error {
	if errors.Is(err, ErrNotFound) {
		e.log.Info("job for a visit that is gone", zap.String("type", t.Type()), zap.String("visit", p.VisitID))
		return nil
	}
	return err
}

package workflows

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/visit"
)

// DelayedTaskCheckInterval is how often Asynq workers move due scheduled
// tasks (reminders, checks) to their queue. Asynq's default of 5 s made a
// reminder 3.7 s late at the median (docs/benchmarks.md); 1 s costs one
// small Redis script per queue per second per worker process.
const DelayedTaskCheckInterval = time.Second

// timersKey is the Extra entry of visits scheduled before the timer chain
// (timers.go): the task IDs of their schedule's pending timers, one task
// each, so a reschedule or cancel can still delete them.
const timersKey = "timers"

// scheduleTimers plans the reminders and the no-show check of the visit's
// current schedule and starts its timer chain (runs inside create and
// reschedule, after scheduleRoom added the room's deadline). A deadline
// already come is enqueued now rather than through the chain.
func (e *Engine) scheduleTimers(v *visit.Visit, now time.Time) {
	loc, err := loadZone(v.Timezone)
	if err != nil {
		loc = time.UTC
	}
	plan := PlanReminders(v.ScheduledAt, now, e.cfg.Visits.ReminderOffsets, e.cfg.Visits.QuietHours, loc)
	for _, r := range plan {
		if r.Skipped != "" {
			v.Log(visit.Entry{At: now, Source: visit.SourceScheduler, Type: "reminder-skipped",
				Summary: "reminder " + r.Name + ": " + r.Skipped})
			continue
		}
		if r.At.After(now) {
			addTimer(v, r.Name, r.At)
		} else {
			v.Enqueue(reminderJob(v, r))
		}
		if r.Moved {
			v.Log(visit.Entry{At: now, Source: visit.SourceScheduler, Type: "reminder-moved",
				Summary: "reminder " + r.Name + " moved before quiet hours to " + r.At.In(loc).Format(time.RFC3339)})
		}
	}
	if at := v.ScheduledAt.Add(e.cfg.Visits.NoShowAfter); at.After(now) {
		addTimer(v, timerNoShow, at)
	} else {
		v.Enqueue(noShowCheckJob(v, time.Time{}))
	}
	startChain(v)
}

// dropScheduleTimers records outbox deletions of the current schedule's
// pending timers: the chain's step, or on a visit scheduled before the
// chain its reminder and no-show tasks.
func dropScheduleTimers(v *visit.Visit) {
	for _, id := range strings.Fields(v.Extra[timersKey]) {
		v.Enqueue(deletion(TypeReminderSend, id)) // reminders and the no-show check share the default queue
	}
	delete(v.Extra, timersKey)
	dropChain(v)
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

// currentSchedule reports whether a job made for schedule generation n still
// applies: a reschedule moved on otherwise.
func currentSchedule(v *visit.Visit, n int) bool { return v.Schedule == n }

// handleReminder sends one reminder of the visit's current schedule.
func (e *Engine) handleReminder(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	tmpl := e.cfg.Visits.Templates.Reminder
	if p.Reminder == startingSoon {
		tmpl = e.cfg.Visits.Templates.StartingSoon
	}
	return e.sendOnce(ctx, smsSend{visitID: p.VisitID, purpose: "reminder:" + p.Reminder + ":" + schedulePurpose(p.Schedule),
		to: visit.RolePatient, template: tmpl, timeSensitive: true,
		applies: func(v *visit.Visit) bool {
			// Only until the patient is in the room (an early provider does not stop it).
			s := v.State()
			return currentSchedule(v, p.Schedule) && (s == visit.Scheduled || s == visit.ProviderWaiting)
		}})
}

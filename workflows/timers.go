package workflows

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/visit"
)

// A visit's schedule has up to five deadlines: its room (room_lead ahead),
// its reminders and its no-show check. Each used to be a scheduled Asynq
// task of its own, about 540 bytes of Redis apiece (docs/benchmarks.md).
// Now the deadlines are kept on the visit (Extra[chainKey]) and one
// scheduled task per visit, visit:timers, waits for the earliest (less
// TimerLead). When it runs it enqueues, in one atomic update of the visit
// and through the outbox, the jobs whose deadline is at most TimerLead
// away (room:create, reminder:send, visit:no-show-check, with their usual
// task IDs, so they stay exactly once), scheduled at their deadline, and
// schedules the chain's next step at the next one.
//
// Each step has a task ID of its own (<visit>:visit:timers:t<step>:s<schedule>)
// and the visit records which step is current: a step delivered twice, or
// run early from the dashboard, finds the chain moved on or nothing due,
// and an early run still hands the chain to a new step (its own ID would
// be taken by the run itself).

// chainKey is the Extra entry holding the current schedule's chain:
// "<step> <timer> …", deadlines in time order. A timer is its name and its
// time in whole seconds from scheduled_at (rounded up to a second):
// "room@-1800", "no-show@900". A reminder due exactly its offset
// before the visit is its name alone ("r24h0m0s"), which says when. The
// visit record is read and written on every change, so the chain is kept
// short: "0 r24h0m0s r1h0m0s room@-1800 r10m0s no-show@900".
const chainKey = "chain"

// TimerLead is how long before a deadline the chain hands its job to
// Asynq, scheduled at the deadline: the job then waits in Asynq's scheduled
// set as a lone task did, and is as punctual (docs/benchmarks.md: firing
// the chain at the deadline added a second hop, Asynq's forwarder and an
// idle worker's poll, to every reminder's lateness).
const TimerLead = 10 * time.Second

// Timer names in the chain besides reminder names ("r24h0m0s").
const (
	timerRoom   = "room"
	timerNoShow = "no-show"
)

// Timer is one deadline of a visit's current schedule that has not fired.
type Timer struct {
	Name string    // "room", "no-show", or a reminder's name ("r24h0m0s")
	Type string    // the task type it enqueues (room:create, reminder:send, visit:no-show-check)
	At   time.Time // when
}

type chain struct {
	step   int
	timers []Timer
}

// chainBase is the moment a chain's times count from: scheduled_at,
// rounded up to a second.
func chainBase(v *visit.Visit) time.Time { return ceilSecond(v.ScheduledAt).UTC() }

// reminderOffset is how long before the visit the reminder named name
// ("r24h0m0s") is due unless moved.
func reminderOffset(name string) (time.Duration, bool) {
	if len(name) < 2 || name[0] != 'r' {
		return 0, false
	}
	d, err := time.ParseDuration(name[1:])
	return d, err == nil
}

func parseChain(v *visit.Visit) (chain, bool) {
	f := strings.Fields(v.Extra[chainKey])
	if len(f) == 0 {
		return chain{}, false
	}
	step, err := strconv.Atoi(f[0])
	if err != nil {
		return chain{}, false
	}
	base := chainBase(v)
	c := chain{step: step}
	for _, t := range f[1:] {
		name, rel, explicit := strings.Cut(t, "@")
		var at time.Time
		if explicit {
			sec, err := strconv.ParseInt(rel, 10, 64)
			if err != nil {
				return chain{}, false
			}
			at = base.Add(time.Duration(sec) * time.Second)
		} else if off, ok := reminderOffset(name); ok {
			at = base.Add(-off)
		} else {
			return chain{}, false
		}
		c.timers = append(c.timers, Timer{Name: name, Type: timerType(name), At: at})
	}
	return c, true
}

func (c chain) encode(v *visit.Visit) string {
	base := chainBase(v)
	b := strconv.AppendInt(nil, int64(c.step), 10)
	for _, t := range c.timers {
		b = appendTimer(b, base, t)
	}
	return string(b)
}

// appendTimer appends " <timer>" to a chain's text.
func appendTimer(b []byte, base time.Time, t Timer) []byte {
	b = append(b, ' ')
	b = append(b, t.Name...)
	if off, ok := reminderOffset(t.Name); t.Type == TypeReminderSend && ok && t.At.Equal(base.Add(-off)) {
		return b
	}
	b = append(b, '@')
	return strconv.AppendInt(b, int64(t.At.Sub(base)/time.Second), 10)
}

func timerType(name string) string {
	switch name {
	case timerRoom:
		return TypeRoomCreate
	case timerNoShow:
		return TypeNoShowCheck
	}
	return TypeReminderSend
}

// ceilSecond is t rounded up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); !s.Equal(t) {
		return s.Add(time.Second)
	}
	return t
}

// addTimer adds a deadline to the chain being planned for v's schedule
// (inside create or reschedule, before startChain, which puts the
// deadlines in order).
func addTimer(v *visit.Visit, name string, at time.Time) {
	// Asynq schedules in whole seconds, rounding down. A reminder or a room
	// a fraction of a second early is harmless (lone tasks ran so); the
	// no-show check must not run before its deadline.
	if name == timerNoShow {
		at = ceilSecond(at)
	} else {
		at = at.Truncate(time.Second)
	}
	if v.Extra == nil {
		v.Extra = map[string]string{}
	}
	planned := v.Extra[chainKey]
	if planned == "" {
		planned = "0"
	}
	v.Extra[chainKey] = string(appendTimer([]byte(planned), chainBase(v), Timer{Name: name, Type: timerType(name), At: at.UTC()}))
}

// startChain orders the planned chain's deadlines and schedules its first
// step.
func startChain(v *visit.Visit) {
	c, ok := parseChain(v)
	if !ok || len(c.timers) == 0 {
		delete(v.Extra, chainKey)
		return
	}
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].At.Before(c.timers[j].At) })
	v.Extra[chainKey] = c.encode(v)
	v.Enqueue(timersJob(v, c.step, c.timers[0].At.Add(-TimerLead)))
}

// dropChain records the deletion of the chain's pending step and forgets
// its deadlines (reschedule, cancel).
func dropChain(v *visit.Visit) {
	if c, ok := parseChain(v); ok {
		v.Enqueue(deletion(TypeVisitTimers, timersJob(v, c.step, time.Time{}).ID))
	}
	delete(v.Extra, chainKey)
}

// UpcomingTimers lists the deadlines of v's current schedule that have not
// fired yet, in time order (the visit board shows them; the Asynq
// dashboard holds only the chain's next step).
func UpcomingTimers(v *visit.Visit) []Timer {
	c, _ := parseChain(v)
	return c.timers
}

// TimersTaskID is the task ID of the chain's pending step ("" when none).
func TimersTaskID(v *visit.Visit) string {
	c, ok := parseChain(v)
	if !ok || len(c.timers) == 0 {
		return ""
	}
	return timersJob(v, c.step, time.Time{}).ID
}

// timerJob is the job a timer hands to Asynq: at its deadline, or now
// when that has come.
func timerJob(v *visit.Visit, t Timer, now time.Time) visit.Job {
	at := t.At
	if !at.After(now) {
		at = time.Time{}
	}
	switch t.Name {
	case timerRoom:
		return roomCreateJob(v, at)
	case timerNoShow:
		return noShowCheckJob(v, at)
	}
	return reminderJob(v, Reminder{Name: t.Name, At: at})
}

// handleTimers runs one step of a visit's timer chain.
func (e *Engine) handleTimers(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		c, ok := parseChain(v)
		if !ok || !currentSchedule(v, p.Schedule) || c.step != p.Step {
			return nil // stale: a reschedule, a cancel or a later step owns the deadlines
		}
		if v.Finished() {
			delete(v.Extra, chainKey) // every job left would do nothing
			return nil
		}
		due := 0
		for due < len(c.timers) && !c.timers[due].At.After(now.Add(TimerLead)) {
			v.Enqueue(timerJob(v, c.timers[due], now))
			due++
		}
		c.step++
		c.timers = c.timers[due:]
		if len(c.timers) == 0 {
			delete(v.Extra, chainKey)
			return nil
		}
		v.Extra[chainKey] = c.encode(v)
		v.Enqueue(timersJob(v, c.step, c.timers[0].At.Add(-TimerLead)))
		return nil
	})
	return e.ignoreGone(t.Type(), p.VisitID, err)
}

package workflows_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

// scheduledOf lists the visit's tasks waiting in any queue's scheduled set.
func scheduledOf(env *testenv.Env, id string) []string {
	var out []string
	for _, q := range []string{workflows.QueueCritical, workflows.QueueDefault, workflows.QueueLow} {
		for _, t := range env.ScheduledIDs(q) {
			if strings.HasPrefix(t, id+":") {
				out = append(out, t)
			}
		}
	}
	return out
}

// A scheduled visit holds one task in Asynq whatever its number of
// deadlines (Redis memory per visit, docs/benchmarks.md), scheduled
// TimerLead before its first deadline; the deadlines themselves are on the
// visit, in order.
func TestScheduledVisitHoldsOneTimerTask(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	v := env.CreateEngineVisit(visitInput("V-one", at, "UTC"))
	ids := scheduledOf(env, "V-one")
	if want := []string{"V-one:visit:timers:t0:s0"}; !slices.Equal(ids, want) {
		t.Fatalf("scheduled tasks of the visit = %v; want %v", ids, want)
	}
	info, err := env.Inspector.GetTaskInfo(env.QueueName(workflows.QueueDefault), ids[0])
	if want := at.Add(-24 * time.Hour).Add(-workflows.TimerLead); err != nil || !info.NextProcessAt.Equal(want) {
		t.Fatalf("the timer task runs at %v (%v); want TimerLead before the 24h reminder, %v", info.NextProcessAt, err, want)
	}
	var got []string
	for _, tm := range workflows.UpcomingTimers(v) {
		got = append(got, tm.Type+" "+tm.Name+" "+at.Sub(tm.At).String())
	}
	want := []string{"reminder:send r24h0m0s 24h0m0s", "reminder:send r1h0m0s 1h0m0s", "room:create room 30m0s",
		"reminder:send r10m0s 10m0s", "visit:no-show-check no-show -15m0s"}
	if !slices.Equal(got, want) {
		t.Fatalf("UpcomingTimers = %v; want %v", got, want)
	}
}

// The chain fires each deadline in turn through real workers: two
// reminders further apart than TimerLead, each handed over by its own
// step, both arrive, once each.
func TestTimerChainSendsEachReminderInTurn(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ReminderOffsets = []time.Duration{time.Hour + workflows.TimerLead + 2*time.Second, time.Hour}
		c.Visits.QuietHours = config.QuietHours{}
	})
	env.StartWorkers(env.Engine)
	at := time.Now().Add(time.Hour + workflows.TimerLead + 3*time.Second).Truncate(time.Second)
	env.CreateEngineVisit(visitInput("V-turn", at, "UTC"))
	env.Eventually("both reminders", func() bool { return len(env.SMSTo(patientPhone)) == 2 })
	env.Eventually("the chain waits for the room", func() bool {
		ids := scheduledOf(env, "V-turn")
		return len(ids) == 1 && strings.HasPrefix(ids[0], "V-turn:visit:timers:t2:")
	})
	if n := len(env.SMSTo(patientPhone)); n != 2 {
		t.Fatalf("SMS = %d; want 2", n)
	}
}

// Support staff may run the timer task early from the dashboard: nothing
// is due, nothing is sent, and the chain still waits for the first
// deadline (under a new step: the run that came early is spent).
func TestTimerTaskRunEarlyKeepsTheChain(t *testing.T) {
	env := newSMSEnv(t)
	env.StartWorkers(env.Engine)
	at := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	env.CreateEngineVisit(visitInput("V-early", at, "UTC"))
	if err := env.Inspector.RunTask(env.QueueName(workflows.QueueDefault), "V-early:visit:timers:t0:s0"); err != nil {
		t.Fatal(err)
	}
	env.Eventually("the next step", func() bool {
		return slices.Equal(scheduledOf(env, "V-early"), []string{"V-early:visit:timers:t1:s0"})
	})
	info, err := env.Inspector.GetTaskInfo(env.QueueName(workflows.QueueDefault), "V-early:visit:timers:t1:s0")
	if want := at.Add(-24 * time.Hour).Add(-workflows.TimerLead); err != nil || !info.NextProcessAt.Equal(want) {
		t.Fatalf("next step at %v (%v); want still TimerLead before the 24h reminder, %v", info.NextProcessAt, err, want)
	}
	if n := len(env.SMS()); n != 0 {
		t.Fatalf("SMS after an early run = %d; want 0", n)
	}
}

// A step delivered twice (a retry after its commit) or a stale one does
// not fire the deadlines again: the second run of step 0 finds the chain at
// step 1 and enqueues nothing.
func TestTimerStepRunTwiceFiresOnce(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	env.CreateEngineVisit(visitInput("V-twice", at, "UTC"))
	// A worker whose clock reads 20 minutes before the visit: the 24h and
	// 1h reminders and the room are due.
	later := newEngine(env, env.Twilio, clock.NewFake(at.Add(-20*time.Minute)))
	// That worker took step 0 off the queue and runs it (twice).
	if err := env.Inspector.DeleteTask(env.QueueName(workflows.QueueDefault), "V-twice:visit:timers:t0:s0"); err != nil {
		t.Fatal(err)
	}
	step0 := workflows.Payload{VisitID: "V-twice", Step: 0}
	for range 2 {
		if err := testenv.Process(later, workflows.TypeVisitTimers, step0); err != nil {
			t.Fatal(err)
		}
	}
	pending := func() []string {
		var ids []string
		for _, q := range []string{workflows.QueueCritical, workflows.QueueDefault} {
			tasks, _ := env.Inspector.ListPendingTasks(env.QueueName(q))
			for _, tk := range tasks {
				ids = append(ids, tk.ID)
			}
		}
		slices.Sort(ids)
		return ids
	}
	want := []string{"V-twice:reminder:send:r1h0m0s:s0", "V-twice:reminder:send:r24h0m0s:s0", "V-twice:room:create:s0"}
	if got := pending(); !slices.Equal(got, want) {
		t.Fatalf("pending after step 0 ran twice = %v; want %v", got, want)
	}
	if got := scheduledOf(env, "V-twice"); !slices.Equal(got, []string{"V-twice:visit:timers:t1:s0"}) {
		t.Fatalf("scheduled = %v; want only step 1 (the 10m reminder)", got)
	}
	v, err := env.Store.Get(t.Context(), "V-twice")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, tm := range workflows.UpcomingTimers(v) {
		left = append(left, tm.Name)
	}
	if !slices.Equal(left, []string{"r10m0s", "no-show"}) {
		t.Fatalf("upcoming after step 0 = %v; want the 10m reminder and the no-show check", left)
	}
	if got := testenv.Entries(env.Timeline("V-twice"), "scheduled"); len(got) != 1 {
		t.Fatalf("timeline scheduled entries = %v", got)
	}
}

// Asynq schedules in whole seconds, rounding down: a no-show check due at
// a fraction of a second would run before its deadline and find it not
// passed. The chain rounds that deadline up.
func TestNoShowTimerIsNeverBeforeItsDeadline(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(72 * time.Hour).Truncate(time.Second).Add(500 * time.Millisecond)
	v, _, err := env.Engine.CreateVisit(t.Context(), workflows.CreateInput{ID: "V-frac", ScheduledAt: at.UTC().Format(time.RFC3339Nano),
		Provider: workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := at.Add(env.Config.Visits.NoShowAfter)
	for _, tm := range workflows.UpcomingTimers(v) {
		if tm.Type == workflows.TypeNoShowCheck && (tm.At.Before(deadline) || tm.At.Sub(deadline) >= time.Second) {
			t.Errorf("no-show timer at %v; want the first whole second at or after the deadline %v", tm.At, deadline)
		}
	}
}

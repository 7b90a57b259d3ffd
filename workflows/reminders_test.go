package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestPlanRemindersQuietHoursAcrossDST(t *testing.T) {
	ny := mustZone(t, "America/New_York")
	quiet := config.QuietHours{Start: 21 * time.Hour, End: 8 * time.Hour, Set: true}
	local := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, ny) }
	for _, tc := range []struct {
		name      string
		visit     time.Time
		now       time.Time
		offsets   []time.Duration
		want      []time.Time // send times, in order
		wantMoved []bool
	}{{
		// 2026-03-08 02:00 EST → 03:00 EDT. 07:00 EDT is quiet; the quiet
		// period began 21:00 EST the evening before.
		name: "spring forward: moved before the quiet period (EST evening)", visit: local(2026, 3, 8, 10, 0),
		now: local(2026, 3, 1, 12, 0), offsets: []time.Duration{3 * time.Hour},
		want: []time.Time{local(2026, 3, 7, 20, 59)}, wantMoved: []bool{true},
	}, {
		name: "spring forward: 24h before is 11:00 EST, outside quiet hours", visit: local(2026, 3, 8, 12, 0),
		now: local(2026, 3, 1, 12, 0), offsets: []time.Duration{24 * time.Hour},
		want: []time.Time{local(2026, 3, 7, 11, 0)}, wantMoved: []bool{false},
	}, {
		// 2026-11-01 02:00 EDT → 01:00 EST. 07:00 EST is quiet; the period
		// began 21:00 EDT on Oct 31, 11 hours of wall clock but 12 real hours earlier.
		name: "fall back: moved before the quiet period (EDT evening)", visit: local(2026, 11, 1, 9, 0),
		now: local(2026, 10, 20, 12, 0), offsets: []time.Duration{2 * time.Hour},
		want: []time.Time{local(2026, 10, 31, 20, 59)}, wantMoved: []bool{true},
	}, {
		name: "quiet period already begun: sent when it ends, before the visit", visit: local(2026, 3, 8, 10, 0),
		now: local(2026, 3, 7, 22, 0), offsets: []time.Duration{3 * time.Hour},
		want: []time.Time{local(2026, 3, 8, 8, 0)}, wantMoved: []bool{true},
	}, {
		name: "offsets collapsing on one moment are sent once", visit: local(2026, 6, 2, 7, 0),
		now: local(2026, 6, 1, 12, 0), offsets: []time.Duration{time.Hour, 10 * time.Minute},
		want: []time.Time{local(2026, 6, 1, 20, 59)}, wantMoved: []bool{true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			plan := workflows.PlanReminders(tc.visit, tc.now, tc.offsets, quiet, ny)
			var got []time.Time
			var moved []bool
			for _, r := range plan {
				if r.Skipped == "" {
					got = append(got, r.At)
					moved = append(moved, r.Moved)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("PlanReminders() = %+v; want sends at %v", plan, tc.want)
			}
			for i := range got {
				if !got[i].Equal(tc.want[i]) || moved[i] != tc.wantMoved[i] {
					t.Errorf("reminder %d at %v (moved %v); want %v (moved %v)", i, got[i].In(ny), moved[i], tc.want[i], tc.wantMoved[i])
				}
				if quiet.Contains(got[i].In(ny)) {
					t.Errorf("reminder %d at %v is inside quiet hours", i, got[i].In(ny))
				}
			}
		})
	}
}

func TestPlanRemindersStartingSoon(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	plan := workflows.PlanReminders(now.Add(5*time.Minute), now, []time.Duration{24 * time.Hour, time.Hour, 10 * time.Minute},
		config.QuietHours{}, time.UTC)
	if len(plan) != 1 || plan[0].Name != "starting-soon" || !plan[0].At.Equal(now) {
		t.Fatalf("PlanReminders(5m before) = %+v; want one starting-soon now", plan)
	}
}

func TestReminderSMSCarriesProviderLocalTimeAndLink(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	env.StartWorkers(env.Engine)
	// One hour and one second ahead: the 1h reminder is due in a second and
	// goes through Asynq's scheduled set like any other.
	at := time.Now().Add(time.Hour + time.Second).Truncate(time.Second)
	v := env.CreateEngineVisit(visitInput("V-rem", at, "America/New_York"))
	env.Eventually("the reminder", func() bool { return len(env.SMSTo(patientPhone)) == 1 })
	body := env.SMSTo(patientPhone)[0].Body
	wantWhen := at.In(mustZone(t, "America/New_York")).Format("3:04 PM")
	// The dial-in PIN in groups of three, as people read and key it.
	p := v.DialIn.PIN
	wantPIN := "PIN " + p[0:3] + " " + p[3:6] + " " + p[6:9] + ","
	for _, want := range []string{"Dr. Lee", wantWhen, env.URL + "/join/", wantPIN, "call " + v.DialIn.Number, "Reply C to confirm"} {
		if !strings.Contains(body, want) {
			t.Errorf("reminder %q lacks %q", body, want)
		}
	}
	// The link carries a single-visit invite secret, not the visit id
	// (TestReminderLinkLetsThePatientJoinAsThemselves in invites_test.go exchanges it).
	if tok := body[strings.LastIndex(body, "/join/")+len("/join/"):]; len(tok) < 22 || strings.Contains(tok, "V-rem") {
		t.Errorf("reminder join token %q; want an invite secret of at least 128 bits", tok)
	}
	env.Eventually("delivery in the timeline", func() bool { return len(testenv.Entries(env.Timeline("V-rem"), "sms-delivered")) == 1 })
}

func TestVisitCreatedInsideSmallestOffsetGetsStartingSoon(t *testing.T) {
	env := newSMSEnv(t)
	env.StartWorkers(env.Engine)
	env.CreateEngineVisit(visitInput("V-soon", time.Now().Add(3*time.Minute), "UTC"))
	env.Eventually("starting-soon", func() bool { return len(env.SMSTo(patientPhone)) == 1 })
	if got := env.SMSTo(patientPhone)[0].Body; !strings.Contains(got, "starts soon") {
		t.Fatalf("SMS = %q; want the starting_soon text", got)
	}
}

func TestRescheduleReplacesEveryPendingTimer(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	env.CreateEngineVisit(visitInput("V-rs", at, "UTC"))
	// One timer task holds the schedule's room, reminders and no-show check (timers.go).
	if before := scheduledOf(env, "V-rs"); !slices.Equal(before, []string{"V-rs:visit:timers:t0:s0"}) {
		t.Fatalf("scheduled after create = %v; want the schedule's timer chain", before)
	}
	newAt := at.Add(24 * time.Hour)
	code, body := env.APIRaw(http.MethodPatch, "/v1/visits/V-rs", `{"scheduled_at":"`+newAt.Format(time.RFC3339)+`"}`)
	if code != http.StatusOK {
		t.Fatalf("PATCH = %d %s", code, body)
	}
	after := scheduledOf(env, "V-rs")
	if !slices.Equal(after, []string{"V-rs:visit:timers:t0:s1"}) {
		t.Fatalf("scheduled after reschedule = %v; want only schedule s1's timer chain", after)
	}
	v, err := env.Store.Get(context.Background(), "V-rs")
	if err != nil {
		t.Fatal(err)
	}
	var upcoming []string
	for _, tm := range workflows.UpcomingTimers(v) {
		upcoming = append(upcoming, tm.Name+" "+newAt.Sub(tm.At).String())
	}
	if want := []string{"r24h0m0s 24h0m0s", "r1h0m0s 1h0m0s", "room 30m0s", "r10m0s 10m0s", "no-show -15m0s"}; !slices.Equal(upcoming, want) {
		t.Fatalf("upcoming timers after reschedule = %v; want %v (from the new time)", upcoming, want)
	}
	// A stale task that escaped deletion (already running) sends nothing:
	// a reminder of the old schedule, or the old schedule's chain.
	if err := testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-rs", Reminder: "r24h0m0s", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Process(newEngine(env, env.Twilio, clock.NewFake(newAt)), workflows.TypeVisitTimers, workflows.Payload{VisitID: "V-rs", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	env.StartWorkers(env.Engine)
	if n := len(env.SMS()); n != 0 {
		t.Fatalf("stale reminder sent %d SMS; want 0", n)
	}
	// Every new timer fires: the new chain's step, run by a worker whose
	// clock reads five minutes before the new time, enqueues the three
	// reminders (and the room), which real workers send.
	if err := testenv.Process(newEngine(env, env.Twilio, clock.NewFake(newAt.Add(-5*time.Minute))), workflows.TypeVisitTimers,
		workflows.Payload{VisitID: "V-rs", Schedule: 1}); err != nil {
		t.Fatal(err)
	}
	env.Eventually("three new reminders", func() bool { return len(env.SMSTo(patientPhone)) == 3 })
	for _, m := range env.SMSTo(patientPhone) {
		if !strings.Contains(m.Body, newAt.Format("Jan 2, 2006")) {
			t.Errorf("reminder %q does not carry the new date", m.Body)
		}
	}
	if got := testenv.Entries(env.Timeline("V-rs"), "rescheduled"); len(got) != 1 {
		t.Errorf("timeline rescheduled entries = %v; want 1", got)
	}
}

func TestRescheduleOfStartedVisitIs422(t *testing.T) {
	env := newSMSEnv(t)
	env.CreateEngineVisit(visitInput("V-started", time.Now().Add(time.Hour), "UTC"))
	joinPatient(t, env.Engine, "V-started", "PA1")
	if code, body := env.APIRaw(http.MethodPatch, "/v1/visits/V-started", `{"scheduled_at":"next week"}`); code != http.StatusBadRequest ||
		!strings.Contains(string(body), `"field":"scheduled_at"`) {
		t.Fatalf("PATCH with a bad time = %d %s; want 400 naming scheduled_at", code, body)
	}
	later := time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	code, body := env.APIRaw(http.MethodPatch, "/v1/visits/V-started", `{"scheduled_at":"`+later+`"}`)
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("PATCH of a waiting visit = %d %s; want 422", code, body)
	}
}

func TestCancelRemovesTimersAndSendsCancellationWhenConfigured(t *testing.T) {
	for _, cancelSMS := range []bool{false, true} {
		t.Run(fmt.Sprint("cancel_sms=", cancelSMS), func(t *testing.T) {
			env := newSMSEnv(t, func(c *config.Config) { c.Visits.CancelSMS = cancelSMS })
			env.StartWorkers(env.Engine)
			env.CreateEngineVisit(visitInput("V-c", time.Now().Add(48*time.Hour), "UTC"))
			if ids := scheduledOf(env, "V-c"); !slices.Equal(ids, []string{"V-c:visit:timers:t0:s0"}) {
				t.Fatalf("scheduled = %v; want the timer chain (reminders and no-show check)", ids)
			}
			if code, body := env.APIRaw(http.MethodPost, "/v1/visits/V-c/cancel", ""); code != http.StatusOK {
				t.Fatalf("cancel = %d %s", code, body)
			}
			if ids := scheduledOf(env, "V-c"); len(ids) != 0 {
				t.Fatalf("scheduled after cancel = %v; want none", ids)
			}
			want := 0
			if cancelSMS {
				want = 1
				env.Eventually("the cancellation SMS", func() bool { return len(env.SMSTo(patientPhone)) == 1 })
				if b := env.SMSTo(patientPhone)[0].Body; !strings.Contains(b, "cancelled") {
					t.Errorf("SMS = %q; want the cancelled text", b)
				}
			} else {
				// The cancel enqueued no cancellation job: nothing will text the patient.
				const job = "V-c:visit:cancel-sms:cancelled"
				if info, err := env.Inspector.GetTaskInfo(env.QueueName(workflows.QueueDefault), job); !errors.Is(err, asynq.ErrTaskNotFound) {
					t.Fatalf("%s after a cancel with cancel_sms off: %v, %v; want no such task", job, info, err)
				}
			}
			if n := len(env.SMS()); n != want {
				t.Fatalf("SMS sent = %d; want %d", n, want)
			}
			// A reminder of the cancelled visit that ran anyway sends nothing.
			if err := testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-c", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
				t.Fatal(err)
			}
			// So does the chain's step, run anyway, however late its clock.
			if err := testenv.Process(newEngine(env, env.Twilio, clock.NewFake(time.Now().Add(47*time.Hour))), workflows.TypeVisitTimers,
				workflows.Payload{VisitID: "V-c"}); err != nil {
				t.Fatal(err)
			}
			env.Eventually("the queues settle", func() bool {
				info, err := env.Inspector.GetQueueInfo(env.QueueName(workflows.QueueDefault))
				return err == nil && info.Pending == 0 && info.Active == 0
			})
			if n := len(env.SMS()); n != want {
				t.Fatalf("SMS after stale reminder = %d; want %d", n, want)
			}
		})
	}
}

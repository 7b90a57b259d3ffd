package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/twiliosig"
	"github.com/visitflow/visitflow/internal/visit"
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
	env.startWorkers(env.engine)
	// One hour and one second ahead: the 1h reminder is due in a second and
	// goes through Asynq's scheduled set like any other.
	at := time.Now().Add(time.Hour + time.Second).Truncate(time.Second)
	env.create(visitInput("V-rem", at, "America/New_York"))
	env.waitUntil("the reminder", func() bool { return len(env.messagesTo(patientPhone)) == 1 })
	body := env.messagesTo(patientPhone)[0].Body
	wantWhen := at.In(mustZone(t, "America/New_York")).Format("3:04 PM")
	for _, want := range []string{"Dr. Lee", wantWhen, "http://localhost:8080/join/"} {
		if !strings.Contains(body, want) {
			t.Errorf("reminder %q lacks %q", body, want)
		}
	}
	// The link carries a single-visit invite secret, not the visit id
	// (handlers' TestReminderLinkLetsThePatientJoinAsThemselves exchanges it).
	if tok := body[strings.LastIndex(body, "/join/")+len("/join/"):]; len(tok) < 22 || strings.Contains(tok, "V-rem") {
		t.Errorf("reminder join token %q; want an invite secret of at least 128 bits", tok)
	}
	env.waitUntil("delivery in the timeline", func() bool { return len(entries(env.timeline("V-rem"), "sms-delivered")) == 1 })
}

func TestVisitCreatedInsideSmallestOffsetGetsStartingSoon(t *testing.T) {
	env := newSMSEnv(t)
	env.startWorkers(env.engine)
	env.create(visitInput("V-soon", time.Now().Add(3*time.Minute), "UTC"))
	env.waitUntil("starting-soon", func() bool { return len(env.messagesTo(patientPhone)) == 1 })
	if got := env.messagesTo(patientPhone)[0].Body; !strings.Contains(got, "starts soon") {
		t.Fatalf("SMS = %q; want the starting_soon text", got)
	}
}

func TestRescheduleReplacesEveryPendingTimer(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	env.create(visitInput("V-rs", at, "UTC"))
	before := env.scheduledIDs()
	if len(before) != 4 { // 3 reminders + the no-show check
		t.Fatalf("scheduled after create = %v; want 3 reminders and a no-show check", before)
	}
	newAt := at.Add(24 * time.Hour)
	resp, body := env.api(http.MethodPatch, "/v1/visits/V-rs", `{"scheduled_at":"`+newAt.Format(time.RFC3339)+`"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH = %d %s", resp.StatusCode, body)
	}
	after := env.scheduledIDs()
	if len(after) != 4 {
		t.Fatalf("scheduled after reschedule = %v; want 4 new timers", after)
	}
	for _, id := range after {
		if !strings.HasSuffix(id, ":s1") {
			t.Errorf("task %s survived the reschedule; want only schedule s1 tasks", id)
		}
	}
	// A stale task that escaped deletion (already running) sends nothing.
	if err := run(env.engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-rs", Reminder: "r24h0m0s", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	if n := len(env.messages()); n != 0 {
		t.Fatalf("stale reminder sent %d SMS; want 0", n)
	}
	// Every new timer fires: run them now through real workers.
	env.startWorkers(env.engine)
	for _, id := range after {
		if !strings.Contains(id, workflows.TypeReminderSend) {
			continue // the no-show check is due after the visit, not now
		}
		if err := env.inspect.RunTask(workflows.QueueDefault, id); err != nil {
			t.Fatal(err)
		}
	}
	env.waitUntil("three new reminders", func() bool { return len(env.messagesTo(patientPhone)) == 3 })
	for _, m := range env.messagesTo(patientPhone) {
		if !strings.Contains(m.Body, newAt.Format("Jan 2, 2006")) {
			t.Errorf("reminder %q does not carry the new date", m.Body)
		}
	}
	if got := entries(env.timeline("V-rs"), "rescheduled"); len(got) != 1 {
		t.Errorf("timeline rescheduled entries = %v; want 1", got)
	}
}

func TestRescheduleOfStartedVisitIs422(t *testing.T) {
	env := newSMSEnv(t)
	env.create(visitInput("V-started", time.Now().Add(time.Hour), "UTC"))
	joinPatient(t, env.engine, "V-started", "PA1")
	if resp, body := env.api(http.MethodPatch, "/v1/visits/V-started", `{"scheduled_at":"next week"}`); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(string(body), `"field":"scheduled_at"`) {
		t.Fatalf("PATCH with a bad time = %d %s; want 400 naming scheduled_at", resp.StatusCode, body)
	}
	resp, body := env.api(http.MethodPatch, "/v1/visits/V-started", `{"scheduled_at":"2030-01-01T10:00:00Z"}`)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("PATCH of a waiting visit = %d %s; want 422", resp.StatusCode, body)
	}
}

func TestCancelRemovesTimersAndSendsCancellationWhenConfigured(t *testing.T) {
	for _, cancelSMS := range []bool{false, true} {
		t.Run(fmt.Sprint("cancel_sms=", cancelSMS), func(t *testing.T) {
			env := newSMSEnv(t, func(c *config.Config) { c.Visits.CancelSMS = cancelSMS })
			env.startWorkers(env.engine)
			env.create(visitInput("V-c", time.Now().Add(48*time.Hour), "UTC"))
			if n := len(env.scheduledIDs()); n != 4 {
				t.Fatalf("scheduled = %d; want 4", n)
			}
			if resp, body := env.api(http.MethodPost, "/v1/visits/V-c/cancel", ""); resp.StatusCode != http.StatusOK {
				t.Fatalf("cancel = %d %s", resp.StatusCode, body)
			}
			if ids := env.scheduledIDs(); len(ids) != 0 {
				t.Fatalf("scheduled after cancel = %v; want none", ids)
			}
			want := 0
			if cancelSMS {
				want = 1
				env.waitUntil("the cancellation SMS", func() bool { return len(env.messagesTo(patientPhone)) == 1 })
				if b := env.messagesTo(patientPhone)[0].Body; !strings.Contains(b, "cancelled") {
					t.Errorf("SMS = %q; want the cancelled text", b)
				}
			} else {
				// Wait until the state-changed job ran: the cancel's jobs are done.
				env.waitUntil("cancel processed", func() bool { return len(entries(env.timeline("V-c"), "state-changed")) == 1 })
			}
			if n := len(env.messages()); n != want {
				t.Fatalf("SMS sent = %d; want %d", n, want)
			}
			// A reminder of the cancelled visit that ran anyway sends nothing.
			if err := run(env.engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-c", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
				t.Fatal(err)
			}
			if n := len(env.messages()); n != want {
				t.Fatalf("SMS after stale reminder = %d; want %d", n, want)
			}
		})
	}
}

func joinPatient(t *testing.T, e *workflows.Engine, id, sid string) {
	t.Helper()
	joinAs(t, e, id, sid, "pat-1")
}

func joinAs(t *testing.T, e *workflows.Engine, id, sid, identity string) {
	t.Helper()
	_, err := e.ApplyVideo(context.Background(), workflows.VideoEvent{Event: workflows.EventParticipantConnected,
		RoomName: visit.RoomName(id), ParticipantSID: sid, ParticipantIdentity: identity, Timestamp: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNoShowCheckFiresAfterDeadline(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.NoShowAfter = time.Second })
	env.startWorkers(env.engine)
	env.create(visitInput("V-ns", time.Now(), "UTC"))
	env.create(visitInput("V-came", time.Now(), "UTC"))
	joinPatient(t, env.engine, "V-came", "PA1")
	env.waitUntil("no-show", func() bool { return len(entries(env.timeline("V-ns"), "no-show")) == 1 })
	v, _, _ := env.engine.Visit(context.Background(), "V-ns")
	if v.State() != visit.NoShow {
		t.Fatalf("state = %s; want no_show", v.State())
	}
	// The visit whose patient joined is left alone by its check.
	if err := run(env.engine, workflows.TypeNoShowCheck, workflows.Payload{VisitID: "V-came", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := env.engine.Visit(context.Background(), "V-came"); v.State() != visit.Waiting {
		t.Fatalf("state of joined visit = %s; want waiting", v.State())
	}
}

func TestProviderLateAndFollowup(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ProviderLateAfter = time.Second
		c.Visits.FollowupAfter = time.Second
		c.Visits.ReminderOffsets = nil
	})
	env.startWorkers(env.engine)
	env.create(visitInput("V-late", time.Now(), "UTC"))
	joinPatient(t, env.engine, "V-late", "PA1")
	env.waitUntil("provider-late SMS to both", func() bool {
		return len(env.messagesTo(providerPhone)) == 1 && len(env.messagesTo(patientPhone)) == 1
	})
	if b := env.messagesTo(patientPhone)[0].Body; !strings.Contains(b, "running a few minutes late") {
		t.Errorf("patient SMS = %q; want the patient_late text", b)
	}
	if b := env.messagesTo(providerPhone)[0].Body; !strings.Contains(b, "Sam is waiting") {
		t.Errorf("provider SMS = %q; want the provider_late text", b)
	}
	joinAs(t, env.engine, "V-late", "PA2", "dr-lee")
	if _, err := env.engine.ApplyVideo(context.Background(), workflows.VideoEvent{Event: workflows.EventRoomEnded,
		RoomName: visit.RoomName("V-late"), Timestamp: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	env.waitUntil("follow-up", func() bool { return len(env.messagesTo(patientPhone)) == 2 })
	if b := env.messagesTo(patientPhone)[1].Body; !strings.Contains(b, "Thank you") {
		t.Errorf("follow-up = %q", b)
	}
}

func TestProviderLateNotSentWhenProviderJoinedInTime(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = nil })
	env.create(visitInput("V-ok", time.Now(), "UTC"))
	joinPatient(t, env.engine, "V-ok", "PA1")
	joinAs(t, env.engine, "V-ok", "PA2", "dr-lee")
	// The check made when the patient started waiting (transition 1) runs late.
	if err := run(env.engine, workflows.TypeProviderLateCheck, workflows.Payload{VisitID: "V-ok", Transition: 1}); err != nil {
		t.Fatal(err)
	}
	if n := len(env.messages()); n != 0 {
		t.Fatalf("SMS = %d; want none, the provider came", n)
	}
}

// --- exactly once (contract §6, issue 4 item 4) ---------------------------

func TestSMSOnceWithDuplicatedAndConcurrentCallbacks(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ProviderLateAfter = time.Second
		c.Visits.ReminderOffsets = nil
	})
	env.startWorkers(env.engine)
	env.create(visitInput("V-dup", time.Now(), "UTC"))
	// The same participant-connected callback, delivered 20 times at once
	// (Twilio retries, different idempotency tokens).
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			joinPatient(t, env.engine, "V-dup", "PA1")
		}()
	}
	wg.Wait()
	env.waitUntil("provider-late SMS", func() bool {
		return len(entries(env.timeline("V-dup"), "sms-delivered")) == 2
	})
	// The provider-late job itself, duplicated and run concurrently.
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = run(env.engine, workflows.TypeProviderLateCheck, workflows.Payload{VisitID: "V-dup", Transition: 1})
		}()
	}
	wg.Wait()
	if p, q := len(env.messagesTo(providerPhone)), len(env.messagesTo(patientPhone)); p != 1 || q != 1 {
		t.Fatalf("SMS to provider, patient = %d, %d; want 1, 1", p, q)
	}
	// Duplicated SMS status callbacks add one timeline entry per status.
	sid := env.messagesTo(patientPhone)[0].SID
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = env.engine.ApplySMSStatus(context.Background(), workflows.SMSStatusEvent{VisitHint: "V-dup",
				Purpose: "patient-late", MessageSID: sid, Status: "delivered"})
		}()
	}
	wg.Wait()
	n := 0
	for _, en := range entries(env.timeline("V-dup"), "sms-delivered") {
		if strings.Contains(en.Summary, sid) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("delivered entries for %s = %d; want 1", sid, n)
	}
}

func TestSMSOnceWithSeveralProcessesOnOneRedis(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	engines := []*workflows.Engine{env.engine, env.newEngine(env.twilio, nil), env.newEngine(env.twilio, nil)}
	for _, e := range engines {
		env.startWorkers(e)
	}
	const visits = 10
	at := time.Now().Add(time.Hour + time.Second)
	var wg sync.WaitGroup
	for i := 0; i < visits; i++ {
		for _, e := range engines { // the same create through every web process
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := e.CreateVisit(context.Background(), visitInput(fmt.Sprintf("V-m%d", i), at, "UTC")); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	// Meanwhile every process also runs the reminder job directly.
	for i := 0; i < visits; i++ {
		for _, e := range engines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = run(e, workflows.TypeReminderSend, workflows.Payload{VisitID: fmt.Sprintf("V-m%d", i), Reminder: "r1h0m0s", Schedule: 0})
			}()
		}
	}
	wg.Wait()
	env.waitUntil("the scheduled reminders ran", func() bool {
		info, err := env.inspect.GetQueueInfo(workflows.QueueDefault)
		return err == nil && info.Scheduled == visits && len(env.messages()) >= visits // no-show checks remain
	})
	env.waitUntil("every reminder task settled", func() bool {
		info, _ := env.inspect.GetQueueInfo(workflows.QueueDefault)
		return info.Pending == 0 && info.Active == 0 && info.Retry == 0 && info.Scheduled == visits
	})
	if n := len(env.messages()); n != visits {
		t.Fatalf("SMS = %d; want %d (one per visit)", n, visits)
	}
}

func TestSMSNotResentAfterCrashBetweenTwilioAndRecord(t *testing.T) {
	t.Run("settled by the status callback", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
		crash := &crashAfterSend{Twilio: env.twilio, crashes: 1}
		worker := env.newEngine(crash, nil)
		env.create(visitInput("V-crash", time.Now().Add(48*time.Hour), "UTC"))
		p := workflows.Payload{VisitID: "V-crash", Reminder: "r1h0m0s", Schedule: 0}
		if err := run(worker, workflows.TypeReminderSend, p); err == nil {
			t.Fatal("first attempt returned nil; want the crash error (Asynq retries)")
		}
		env.waitUntil("the status callback settling the claim", func() bool {
			return len(entries(env.timeline("V-crash"), "sms-confirmed")) == 1
		})
		if err := run(worker, workflows.TypeReminderSend, p); err != nil {
			t.Fatalf("retry = %v; want nil (already sent)", err)
		}
		if n := len(env.messages()); n != 1 {
			t.Fatalf("SMS = %d; want 1", n)
		}
	})
	t.Run("no callback: outcome unknown after the claim timeout", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) {
			c.Visits.ReminderOffsets = []time.Duration{time.Hour}
			c.HTTP.PublicBaseURL = "http://127.0.0.1:1" // status callbacks get lost
		})
		clk := clock.NewFake(time.Now())
		crash := &crashAfterSend{Twilio: env.twilio, crashes: 1}
		worker := env.newEngine(crash, clk)
		env.create(visitInput("V-lost", time.Now().Add(48*time.Hour), "UTC"))
		p := workflows.Payload{VisitID: "V-lost", Reminder: "r1h0m0s", Schedule: 0}
		if err := run(worker, workflows.TypeReminderSend, p); err == nil {
			t.Fatal("first attempt returned nil; want the crash error")
		}
		if err := run(worker, workflows.TypeReminderSend, p); err == nil {
			t.Fatal("retry while the claim is fresh returned nil; want retry later")
		}
		clk.Advance(time.Minute)
		if err := run(worker, workflows.TypeReminderSend, p); err != nil {
			t.Fatalf("retry after the claim timeout = %v; want nil", err)
		}
		if n := len(env.messages()); n != 1 {
			t.Fatalf("SMS = %d; want 1", n)
		}
		if got := entries(env.timeline("V-lost"), "sms-outcome-unknown"); len(got) != 1 {
			t.Fatalf("timeline outcome-unknown entries = %v; want 1", got)
		}
	})
}

func TestSMSRetriedWhenTwilioRefusedBeforeAccepting(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	// A front that answers the first message request with a Twilio 503,
	// then passes everything to the emulator.
	var refused atomic.Bool
	upstream := env.emuURL
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Messages.json") && refused.CompareAndSwap(false, true) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"code":20503,"message":"Service unavailable","status":503}`))
			return
		}
		proxy(w, r, upstream)
	}))
	t.Cleanup(front.Close)
	tw, err := twilioapi.New(twilioapi.Config{AccountSID: env.cfg.Twilio.AccountSID, AuthToken: env.cfg.Twilio.AuthToken,
		FromNumber: env.cfg.Twilio.FromNumber, APIURL: front.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	worker := env.newEngine(tw, nil)
	env.create(visitInput("V-503", time.Now().Add(48*time.Hour), "UTC"))
	p := workflows.Payload{VisitID: "V-503", Reminder: "r1h0m0s", Schedule: 0}
	if err := run(worker, workflows.TypeReminderSend, p); err == nil {
		t.Fatal("attempt answered 503 returned nil; want an error so Asynq retries")
	}
	if err := run(worker, workflows.TypeReminderSend, p); err != nil {
		t.Fatalf("retry = %v; want sent", err)
	}
	if n := len(env.messages()); n != 1 {
		t.Fatalf("SMS = %d; want 1", n)
	}
}

func proxy(w http.ResponseWriter, r *http.Request, upstream string) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), r.Body)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		_, _ = w.Write(buf[:n])
		if err != nil {
			return
		}
	}
}

func TestSMSOnceWithTwoSchedulers(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	// Visits whose reminder jobs never reached Asynq (its Redis refused):
	// only the schedulers' outbox sweeps can deliver them.
	broken := workflows.New(workflows.Deps{Store: env.store, Queue: failingQueue{}, Config: env.cfg})
	const visits = 5
	at := time.Now().Add(time.Hour + time.Second)
	for i := 0; i < visits; i++ {
		if _, _, err := broken.CreateVisit(context.Background(), visitInput(fmt.Sprintf("V-s%d", i), at, "UTC")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		s := asynq.NewSchedulerFromRedisClient(env.conn.Client, &asynq.SchedulerOpts{LogLevel: asynq.FatalLevel})
		if err := workflows.RegisterMaintenance(s, workflows.MaintenanceSchedule{OutboxSweep: "@every 1s", RetentionPurge: "@every 1s"}, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
	}
	env.startWorkers(env.engine)
	env.waitUntil("one reminder per visit", func() bool { return len(env.messages()) >= visits })
	// Let both schedulers fire several more sweeps over the same entries.
	info, err := env.inspect.GetQueueInfo(workflows.QueueLow)
	if err != nil {
		t.Fatal(err)
	}
	start := info.Processed
	env.waitUntil("more sweeps", func() bool {
		info, err := env.inspect.GetQueueInfo(workflows.QueueLow)
		return err == nil && info.Processed >= start+4
	})
	if n := len(env.messages()); n != visits {
		t.Fatalf("SMS = %d; want %d", n, visits)
	}
}

// --- delivery status and opt-out (item 5) ---------------------------------

func TestDeliveryStatusWithErrorCodeInTimeline(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	in := visitInput("V-und", time.Now().Add(48*time.Hour), "UTC")
	in.Patient.Phone = "+15005550010" // undelivered, 30003
	env.create(in)
	if err := run(env.engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-und", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	env.waitUntil("undelivered in the timeline", func() bool { return len(entries(env.timeline("V-und"), "sms-undelivered")) == 1 })
	tl := env.timeline("V-und")
	if got := entries(tl, "sms-undelivered")[0].Summary; !strings.Contains(got, "error 30003") {
		t.Errorf("undelivered entry = %q; want error 30003", got)
	}
	if len(entries(tl, "sms-queued")) != 1 || len(entries(tl, "sms-sent")) < 1 {
		t.Errorf("timeline = %+v; want queued and sent entries", tl)
	}
}

func TestOptedOutNumbersReceiveNothing(t *testing.T) {
	t.Run("21610 from Twilio", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{2 * time.Hour, time.Hour} })
		in := visitInput("V-stop", time.Now().Add(48*time.Hour), "UTC")
		in.Patient.Phone = "+15005550004" // REST 400 21610
		env.create(in)
		_ = run(env.engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-stop", Reminder: "r2h0m0s", Schedule: 0})
		if got := entries(env.timeline("V-stop"), "sms-opted-out"); len(got) != 1 {
			t.Fatalf("timeline opted-out entries = %v; want 1", got)
		}
		var requests atomic.Int32
		counting := &countingTwilio{Twilio: env.twilio, n: &requests}
		if err := run(env.newEngine(counting, nil), workflows.TypeReminderSend, workflows.Payload{VisitID: "V-stop", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
			t.Fatal(err)
		}
		if requests.Load() != 0 {
			t.Fatalf("Twilio was asked %d times to text an opted-out number; want 0", requests.Load())
		}
		if got := entries(env.timeline("V-stop"), "sms-skipped"); len(got) != 1 || !strings.Contains(got[0].Summary, "opted out") {
			t.Fatalf("timeline skipped entries = %v; want one saying opted out", got)
		}
		// The record is a keyed hash, not the number.
		keys, _ := redistest.AllKeys(context.Background(), env.conn.Client, "vf:optout:*")
		if len(keys) != 1 || strings.Contains(keys[0], "5550004") {
			t.Fatalf("opt-out keys = %v; want one hash", keys)
		}
	})
	t.Run("STOP and START texted in", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{2 * time.Hour, time.Hour} })
		env.create(visitInput("V-kw", time.Now().Add(48*time.Hour), "UTC"))
		textIn(t, env, "stop")
		if err := run(env.engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-kw", Reminder: "r2h0m0s", Schedule: 0}); err != nil {
			t.Fatal(err)
		}
		if n := len(env.messagesTo(patientPhone)); n != 0 {
			t.Fatalf("SMS after STOP = %d; want 0", n)
		}
		textIn(t, env, "START")
		if err := run(env.engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-kw", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
			t.Fatal(err)
		}
		if n := len(env.messagesTo(patientPhone)); n != 1 {
			t.Fatalf("SMS after START = %d; want 1", n)
		}
	})
}

// textIn has the patient text body to our number through the emulator,
// which posts it signed to /twilio/sms/incoming.
func textIn(t *testing.T, env *smsEnv, body string) string {
	t.Helper()
	resp, err := http.Post(env.emuURL+"/messages/incoming", "application/json",
		strings.NewReader(fmt.Sprintf(`{"from":%q,"body":%q}`, patientPhone, body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	if !strings.Contains(b.String(), `"webhook_status":200`) {
		t.Fatalf("inbound %q: emulator says %s; want our webhook to answer 200", body, b.String())
	}
	return b.String()
}

func TestHelpIsAnsweredWithTwiML(t *testing.T) {
	env := newSMSEnv(t)
	out := textIn(t, env, "help")
	if !strings.Contains(out, "Reply STOP") {
		t.Fatalf("emulator result %s; want our HELP reply", out)
	}
}

type countingTwilio struct {
	workflows.Twilio
	n *atomic.Int32
}

func (c *countingTwilio) SendSMS(ctx context.Context, p twilioapi.SendSMSParams) (twilioapi.Message, error) {
	c.n.Add(1)
	return c.Twilio.SendSMS(ctx, p)
}

// --- batch and retention (items 6, 7) -------------------------------------

func TestBatchCreateArrayAndJSONLines(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	item := func(id string) string {
		return `{"id":"` + id + `","scheduled_at":"` + at + `","provider":{"identity":"dr"},"patient":{"identity":"p","phone":"` + patientPhone + `"}}`
	}
	resp, body := env.api(http.MethodPost, "/v1/visits/batch",
		"["+item("B-1")+","+item("B-2")+`,{"id":"B-3","scheduled_at":"tomorrow"},`+item("B-1")+"]")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("batch = %d %s", resp.StatusCode, body)
	}
	for _, want := range []string{`"created":2`, `"existing":1`, `"failed":1`, `"index":2,"status":400`, `"field":"scheduled_at"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("batch answer %s lacks %s", body, want)
		}
	}
	resp, body = env.api(http.MethodPost, "/v1/visits/batch", item("B-4")+"\n"+item("B-5")+"\n")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"created":2`) {
		t.Fatalf("JSON lines batch = %d %s", resp.StatusCode, body)
	}
	if n := len(env.scheduledIDs()); n != 4*4 {
		t.Fatalf("scheduled tasks = %d; want 4 per visit", n)
	}
	var lines strings.Builder
	for i := 0; i <= workflows.BatchLimit; i++ {
		lines.WriteString("{}\n")
	}
	if resp, body := env.api(http.MethodPost, "/v1/visits/batch", lines.String()); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("batch of %d = %d %s; want 400", workflows.BatchLimit+1, resp.StatusCode, body)
	}
}

func TestRetentionPurgeDeletesOnlyOldFinishedVisits(t *testing.T) {
	env := newSMSEnv(t)
	clk := clock.NewFake(time.Now())
	e := env.newEngine(env.twilio, clk)
	at := time.Now().Add(time.Hour)
	for _, id := range []string{"V-old", "V-open"} {
		if _, _, err := e.CreateVisit(context.Background(), visitInput(id, at, "UTC")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CancelVisit(context.Background(), "V-old"); err != nil {
		t.Fatal(err)
	}
	if n, err := e.PurgeFinished(context.Background()); err != nil || n != 0 {
		t.Fatalf("purge before retention = %d, %v; want 0", n, err)
	}
	clk.Advance(env.cfg.Visits.Retention + 2*time.Hour)
	// Two schedulers purging at once delete it once.
	var total atomic.Int32
	var wg sync.WaitGroup
	for _, eng := range []*workflows.Engine{e, env.newEngine(env.twilio, clk)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := eng.PurgeFinished(context.Background())
			if err != nil {
				t.Error(err)
			}
			total.Add(int32(n))
		}()
	}
	wg.Wait()
	if total.Load() != 1 {
		t.Fatalf("purged %d; want 1", total.Load())
	}
	if _, _, err := e.Visit(context.Background(), "V-old"); err == nil {
		t.Fatal("V-old still readable after purge")
	}
	if _, _, err := e.Visit(context.Background(), "V-open"); err != nil {
		t.Fatalf("V-open (not finished) purged: %v", err)
	}
}

func TestSMSRetriedAfterConnectionRefused(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	down, err := twilioapi.New(twilioapi.Config{AccountSID: env.cfg.Twilio.AccountSID, AuthToken: env.cfg.Twilio.AuthToken,
		FromNumber: env.cfg.Twilio.FromNumber, APIURL: "http://127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	env.create(visitInput("V-refused", time.Now().Add(48*time.Hour), "UTC"))
	p := workflows.Payload{VisitID: "V-refused", Reminder: "r1h0m0s", Schedule: 0}
	if err := run(env.newEngine(down, nil), workflows.TypeReminderSend, p); err == nil {
		t.Fatal("attempt with Twilio unreachable returned nil; want an error so Asynq retries")
	}
	if err := run(env.engine, workflows.TypeReminderSend, p); err != nil {
		t.Fatalf("retry = %v; want sent at once (the claim was released)", err)
	}
	if n := len(env.messages()); n != 1 {
		t.Fatalf("SMS = %d; want 1", n)
	}
}

func TestStatusCallback21610MarksOptOut(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{2 * time.Hour, time.Hour} })
	env.create(visitInput("V-21610", time.Now().Add(48*time.Hour), "UTC"))
	form := url.Values{"MessageSid": {"SM0000000000000000000000000000abcd"}, "MessageStatus": {"undelivered"},
		"ErrorCode": {"21610"}, "To": {patientPhone}, "AccountSid": {sandbox.DefaultAccountSID}}
	path := "/twilio/sms/status?visit=V-21610&purpose=reminder%3Ar2h0m0s%3As0"
	post := func(sign bool) int {
		req, _ := http.NewRequest(http.MethodPost, env.appURL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sign {
			req.Header.Set(twiliosig.Header, twiliosig.Sign(sandbox.DefaultAuthToken, env.appURL+path, form))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(false); code != http.StatusForbidden {
		t.Fatalf("unsigned status callback = %d; want 403", code)
	}
	if code := post(true); code != http.StatusNoContent {
		t.Fatalf("status callback = %d; want 204", code)
	}
	tl := env.timeline("V-21610")
	if len(entries(tl, "sms-opted-out")) != 1 || !strings.Contains(entries(tl, "sms-undelivered")[0].Summary, "error 21610") {
		t.Fatalf("timeline = %+v; want undelivered with 21610 and an opted-out entry", tl)
	}
	if err := run(env.engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-21610", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	if n := len(env.messages()); n != 0 {
		t.Fatalf("SMS to an opted-out number = %d; want 0", n)
	}
}

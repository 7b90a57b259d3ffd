package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/workflows"
)

func TestSMSOnceWithDuplicatedAndConcurrentCallbacks(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ProviderLateAfter = time.Second
		c.Visits.ReminderOffsets = nil
	})
	env.StartWorkers(env.Engine)
	env.CreateEngineVisit(visitInput("V-dup", time.Now(), "UTC"))
	// The same participant-connected callback, delivered 20 times at once
	// (Twilio retries, different idempotency tokens).
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			joinPatient(t, env.Engine, "V-dup", "PA1")
		}()
	}
	wg.Wait()
	// patient-waiting to the provider, then provider-late to both.
	env.Eventually("provider-late SMS", func() bool {
		return len(testenv.Entries(env.Timeline("V-dup"), "sms-delivered")) == 3
	})
	// The provider-late job itself, duplicated and run concurrently.
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = testenv.Process(env.Engine, workflows.TypeProviderLateCheck, workflows.Payload{VisitID: "V-dup", Transition: 1})
		}()
	}
	wg.Wait()
	if p, q := len(env.SMSTo(providerPhone)), len(env.SMSTo(patientPhone)); p != 2 || q != 1 {
		t.Fatalf("SMS to provider, patient = %d, %d; want 2 (patient waiting, provider late), 1", p, q)
	}
	// Duplicated SMS status callbacks add one timeline entry per status.
	sid := env.SMSTo(patientPhone)[0].SID
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = env.Engine.ApplySMSStatus(context.Background(), workflows.SMSStatusEvent{VisitHint: "V-dup",
				Purpose: "patient-late", MessageSID: sid, Status: "delivered"})
		}()
	}
	wg.Wait()
	n := 0
	for _, en := range testenv.Entries(env.Timeline("V-dup"), "sms-delivered") {
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
	engines := []*workflows.Engine{env.Engine, newEngine(env, env.Twilio, nil), newEngine(env, env.Twilio, nil)}
	for _, e := range engines {
		env.StartWorkers(e)
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
				_ = testenv.Process(e, workflows.TypeReminderSend, workflows.Payload{VisitID: fmt.Sprintf("V-m%d", i), Reminder: "r1h0m0s", Schedule: 0})
			}()
		}
	}
	wg.Wait()
	env.Eventually("the scheduled reminders ran", func() bool {
		info, err := env.Inspector.GetQueueInfo(env.QueueName(workflows.QueueDefault))
		return err == nil && info.Scheduled == visits && len(env.SMS()) >= visits // no-show checks remain
	})
	env.Eventually("every reminder task settled", func() bool {
		info, _ := env.Inspector.GetQueueInfo(env.QueueName(workflows.QueueDefault))
		return info.Pending == 0 && info.Active == 0 && info.Retry == 0 && info.Scheduled == visits
	})
	if n := len(env.SMS()); n != visits {
		t.Fatalf("SMS = %d; want %d (one per visit)", n, visits)
	}
}

func TestSMSNotResentAfterCrashBetweenTwilioAndRecord(t *testing.T) {
	t.Run("settled by the status callback", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
		crash := &crashAfterSend{Twilio: env.Twilio, crashes: 1}
		worker := newEngine(env, crash, nil)
		env.CreateEngineVisit(visitInput("V-crash", time.Now().Add(48*time.Hour), "UTC"))
		p := workflows.Payload{VisitID: "V-crash", Reminder: "r1h0m0s", Schedule: 0}
		if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
			t.Fatal("first attempt returned nil; want the crash error (Asynq retries)")
		}
		env.Eventually("the status callback settling the claim", func() bool {
			return len(testenv.Entries(env.Timeline("V-crash"), "sms-confirmed")) == 1
		})
		if err := testenv.Process(worker, workflows.TypeReminderSend, p); err != nil {
			t.Fatalf("retry = %v; want nil (already sent)", err)
		}
		if n := len(env.SMS()); n != 1 {
			t.Fatalf("SMS = %d; want 1", n)
		}
	})
	t.Run("no callback: settled by asking Twilio after the claim timeout", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) {
			c.Visits.ReminderOffsets = []time.Duration{time.Hour}
			c.HTTP.PublicBaseURL = "http://127.0.0.1:1" // status callbacks get lost
		})
		clk := clock.NewFake(time.Now())
		crash := &crashAfterSend{Twilio: env.Twilio, crashes: 1}
		worker := newEngine(env, crash, clk)
		env.CreateEngineVisit(visitInput("V-lost", time.Now().Add(48*time.Hour), "UTC"))
		p := workflows.Payload{VisitID: "V-lost", Reminder: "r1h0m0s", Schedule: 0}
		if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
			t.Fatal("first attempt returned nil; want the crash error")
		}
		if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
			t.Fatal("retry while the claim is fresh returned nil; want retry later")
		}
		clk.Advance(time.Minute)
		if err := testenv.Process(worker, workflows.TypeReminderSend, p); err != nil {
			t.Fatalf("retry after the claim timeout = %v; want nil", err)
		}
		if n := len(env.SMS()); n != 1 {
			t.Fatalf("SMS = %d; want 1", n)
		}
		tl := env.Timeline("V-lost")
		if got := testenv.Entries(tl, "sms-accepted"); len(got) != 1 || !strings.Contains(got[0].Summary, "found at Twilio") {
			t.Fatalf("timeline sms-accepted entries = %v; want 1, found at Twilio", got)
		}
		if got := testenv.Entries(tl, "sms-outcome-unknown"); len(got) != 0 {
			t.Fatalf("timeline outcome-unknown entries = %v; want none (Twilio was asked)", got)
		}
	})
}

// flakyCreates is a front to the emulator whose first create of resource
// ("/Messages.json", "/Calls.json") goes wrong in the way mode says:
// "refuse" answers a Twilio 503 without passing it on; "fail-after-accept"
// passes it on, then answers 503; "timeout-after-accept" passes it on,
// then never answers.
func flakyCreates(t *testing.T, upstream, resource, mode string) string {
	var done atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !(r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, resource)) || !done.CompareAndSwap(false, true) {
			proxy(w, r, upstream)
			return
		}
		if mode != "refuse" {
			proxy(discard{}, r, upstream)
		}
		if mode == "timeout-after-accept" {
			<-r.Context().Done() // the client gives up first
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"code":20503,"message":"Service unavailable","status":503}`))
	}))
	t.Cleanup(front.Close)
	return front.URL
}

// discard is a ResponseWriter that forgets the answer (the client never gets it).
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// A 5xx or a timeout after the request left is ambiguous: the attempt keeps
// its claim, and the next one (after the claim timeout) asks Twilio. The
// message sent exactly once either way: found when Twilio had accepted it,
// sent again when it had not.
func TestSMSAmbiguousOutcomeSettledByAskingTwilio(t *testing.T) {
	for _, c := range []struct {
		mode, want string
	}{
		{"refuse", "accepted by Twilio"},
		{"fail-after-accept", "found at Twilio"},
		{"timeout-after-accept", "found at Twilio"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			env := newSMSEnv(t, func(cfg *config.Config) {
				cfg.Visits.ReminderOffsets = []time.Duration{time.Hour}
				cfg.Twilio.RequestTimeout = 300 * time.Millisecond
				cfg.HTTP.PublicBaseURL = "http://127.0.0.1:1" // no status callback settles it
			})
			clk := clock.NewFake(time.Now())
			worker := newEngine(env, env.NewTwilio(flakyCreates(t, env.Sandbox.URL, "/Messages.json", c.mode)), clk)
			env.CreateEngineVisit(visitInput("V-amb", time.Now().Add(48*time.Hour), "UTC"))
			p := workflows.Payload{VisitID: "V-amb", Reminder: "r1h0m0s", Schedule: 0}
			if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
				t.Fatal("attempt without an answer returned nil; want an error so Asynq retries")
			}
			if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
				t.Fatal("retry while the claim is fresh returned nil; want retry later, nothing sent")
			}
			clk.Advance(time.Minute)
			if err := testenv.Process(worker, workflows.TypeReminderSend, p); err != nil {
				t.Fatalf("retry after the claim timeout = %v; want settled", err)
			}
			if err := testenv.Process(worker, workflows.TypeReminderSend, p); err != nil {
				t.Fatalf("one more retry = %v; want nil (done)", err)
			}
			if n := len(env.SMSTo(patientPhone)); n != 1 {
				t.Fatalf("SMS to the patient = %d; want exactly 1", n)
			}
			if got := testenv.Entries(env.Timeline("V-amb"), "sms-accepted"); len(got) != 1 || !strings.Contains(got[0].Summary, c.want) {
				t.Fatalf("timeline sms-accepted = %v; want one saying %q", got, c.want)
			}
		})
	}
}

func TestSMSRetriedWhenTwilioRateLimits(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	// A front that answers the first message request with Twilio's 429,
	// then passes everything to the emulator.
	var refused atomic.Bool
	upstream := env.Sandbox.URL
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Messages.json") && refused.CompareAndSwap(false, true) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"code":20429,"message":"Too Many Requests","status":429}`))
			return
		}
		proxy(w, r, upstream)
	}))
	t.Cleanup(front.Close)
	worker := newEngine(env, env.NewTwilio(front.URL), nil)
	env.CreateEngineVisit(visitInput("V-429", time.Now().Add(48*time.Hour), "UTC"))
	p := workflows.Payload{VisitID: "V-429", Reminder: "r1h0m0s", Schedule: 0}
	if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
		t.Fatal("attempt answered 429 returned nil; want an error so Asynq retries")
	}
	if err := testenv.Process(worker, workflows.TypeReminderSend, p); err != nil {
		t.Fatalf("retry = %v; want sent", err)
	}
	if n := len(env.SMS()); n != 1 {
		t.Fatalf("SMS = %d; want 1", n)
	}
}

// 21611 (the sender's queue is full) clears when the queue drains: the
// reminder job fails in a way Asynq retries, and the retry sends it, once.
func TestSMSQueueFullIsRetriedAndSentOnce(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ReminderOffsets = []time.Duration{time.Hour}
		c.Twilio.FromNumber = sandbox.NumberQueueFull // refused once with 21611
	})
	env.CreateEngineVisit(visitInput("V-21611", time.Now().Add(48*time.Hour), "UTC"))
	p := workflows.Payload{VisitID: "V-21611", Reminder: "r1h0m0s", Schedule: 0}
	err := testenv.Process(env.Engine, workflows.TypeReminderSend, p)
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("attempt refused with 21611 = %v; want an error Asynq retries", err)
	}
	if err := testenv.Process(env.Engine, workflows.TypeReminderSend, p); err != nil {
		t.Fatalf("retry = %v; want sent", err)
	}
	if n := len(env.SMS()); n != 1 {
		t.Fatalf("SMS = %d; want 1", n)
	}
	if tl := env.Timeline("V-21611"); len(testenv.Entries(tl, "sms-failed")) != 0 {
		t.Fatalf("timeline %+v; want no failure recorded for a full queue", tl)
	}
}

// A 500 after Twilio accepted the message is ambiguous: the reminder is not
// sent again. The timeline says it went unanswered, the claim holds
// retries off, and once stale it is settled by finding the message at
// Twilio (its status callbacks are lost here).
func TestSMSAmbiguous500IsNotResent(t *testing.T) {
	testAmbiguousSendNotRepeated(t, sandbox.Faults{FailAfterAccept: 1, DropStatusCallbacks: 1}, 0)
}

// Twilio acting on the request but answering after our timeout is the same
// ambiguity.
func TestSMSTimeoutAfterSendingIsNotResent(t *testing.T) {
	testAmbiguousSendNotRepeated(t, sandbox.Faults{DelayAfterAccept: 1, DelayMS: 3000, DropStatusCallbacks: 1},
		300*time.Millisecond)
}

func testAmbiguousSendNotRepeated(t *testing.T, faults sandbox.Faults, timeout time.Duration) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ReminderOffsets = []time.Duration{time.Hour}
		if timeout > 0 {
			c.Twilio.RequestTimeout = timeout
		}
	})
	if _, err := env.Sandbox.Client.SetFaults(context.Background(), faults); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Now())
	worker := newEngine(env, env.Twilio, clk)
	env.CreateEngineVisit(visitInput("V-amb", time.Now().Add(48*time.Hour), "UTC"))
	p := workflows.Payload{VisitID: "V-amb", Reminder: "r1h0m0s", Schedule: 0}
	if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
		t.Fatal("the ambiguous attempt returned nil; want an error (Asynq retries, the claim holds)")
	}
	if got := testenv.Entries(env.Timeline("V-amb"), "sms-unanswered"); len(got) != 1 || got[0].IsFailure() {
		t.Fatalf("sms-unanswered entries %v; want 1, not (yet) a failure", got)
	}
	if err := testenv.Process(worker, workflows.TypeReminderSend, p); err == nil {
		t.Fatal("the retry while the claim is fresh returned nil; want it held")
	}
	clk.Advance(time.Minute)
	if err := testenv.Process(worker, workflows.TypeReminderSend, p); err != nil {
		t.Fatalf("the retry once the claim is stale = %v; want nil (settled, not sent)", err)
	}
	if n := len(env.SMS()); n != 1 {
		t.Fatalf("SMS = %d; want 1 (the one Twilio accepted)", n)
	}
	tl := env.Timeline("V-amb")
	if got := testenv.Entries(tl, "sms-accepted"); len(got) != 1 || !strings.Contains(got[0].Summary, "found at Twilio") {
		t.Fatalf("sms-accepted entries %v; want one, found at Twilio", got)
	}
	if got := testenv.Entries(tl, "sms-outcome-unknown"); len(got) != 0 {
		t.Fatalf("outcome-unknown entries %v; want none (settled by asking Twilio)", got)
	}
}

// does not.
func TestTimeSensitiveSMSCarryValidityPeriod(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ReminderOffsets = []time.Duration{time.Hour}
		c.Twilio.MessagingServiceSID = "MG0123456789abcdef0123456789abcdef"
	})
	at := time.Now().Add(2 * time.Hour)
	env.CreateEngineVisit(visitInput("V-valid", at, "UTC"))
	if err := testenv.Process(env.Engine, workflows.TypeReminderSend,
		workflows.Payload{VisitID: "V-valid", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	msgs := env.SMS()
	limit := int(time.Until(at.Add(env.Config.Visits.NoShowAfter)).Seconds()) + 1
	if len(msgs) != 1 || msgs[0].Service == "" || msgs[0].ValidityPeriod <= 0 || msgs[0].ValidityPeriod > limit {
		t.Fatalf("reminder %+v; want sent through the service with a validity period of at most %d s", msgs, limit)
	}
}

// proxy forwards r to upstream unchanged (body, headers, path and query).
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
	broken := workflows.New(workflows.Deps{Store: env.Store, Queue: failingQueue{}, Config: env.Config})
	const visits = 5
	at := time.Now().Add(time.Hour + time.Second)
	for i := 0; i < visits; i++ {
		if _, _, err := broken.CreateVisit(context.Background(), visitInput(fmt.Sprintf("V-s%d", i), at, "UTC")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		s := asynq.NewSchedulerFromRedisClient(env.Conn.Client, &asynq.SchedulerOpts{LogLevel: asynq.FatalLevel})
		if err := workflows.RegisterMaintenance(s, env.Config.Redis.Namespace, workflows.MaintenanceSchedule{OutboxSweep: "@every 1s", RetentionPurge: "@every 1s"}, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
	}
	env.StartWorkers(env.Engine)
	env.Eventually("one reminder per visit", func() bool { return len(env.SMS()) >= visits })
	// Let both schedulers fire several more sweeps over the same entries.
	info, err := env.Inspector.GetQueueInfo(env.QueueName(workflows.QueueLow))
	if err != nil {
		t.Fatal(err)
	}
	start := info.Processed
	env.Eventually("more sweeps", func() bool {
		info, err := env.Inspector.GetQueueInfo(env.QueueName(workflows.QueueLow))
		return err == nil && info.Processed >= start+4
	})
	if n := len(env.SMS()); n != visits {
		t.Fatalf("SMS = %d; want %d", n, visits)
	}
}

func TestDeliveryStatusWithErrorCodeInTimeline(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	in := visitInput("V-und", time.Now().Add(48*time.Hour), "UTC")
	in.Patient.Phone = "+15005550010" // undelivered, 30003
	env.CreateEngineVisit(in)
	if err := testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-und", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	env.Eventually("undelivered in the timeline", func() bool { return len(testenv.Entries(env.Timeline("V-und"), "sms-undelivered")) == 1 })
	tl := env.Timeline("V-und")
	if got := testenv.Entries(tl, "sms-undelivered")[0].Summary; !strings.Contains(got, "error 30003") {
		t.Errorf("undelivered entry = %q; want error 30003", got)
	}
	if len(testenv.Entries(tl, "sms-queued")) != 1 || len(testenv.Entries(tl, "sms-sent")) < 1 {
		t.Errorf("timeline = %+v; want queued and sent entries", tl)
	}
}

func TestOptedOutNumbersReceiveNothing(t *testing.T) {
	t.Run("21610 from Twilio", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{2 * time.Hour, time.Hour} })
		in := visitInput("V-stop", time.Now().Add(48*time.Hour), "UTC")
		in.Patient.Phone = "+15005550004" // REST 400 21610
		env.CreateEngineVisit(in)
		_ = testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-stop", Reminder: "r2h0m0s", Schedule: 0})
		if got := testenv.Entries(env.Timeline("V-stop"), "sms-opted-out"); len(got) != 1 {
			t.Fatalf("timeline opted-out entries = %v; want 1", got)
		}
		var requests atomic.Int32
		counting := &countingTwilio{Twilio: env.Twilio, n: &requests}
		if err := testenv.Process(newEngine(env, counting, nil), workflows.TypeReminderSend, workflows.Payload{VisitID: "V-stop", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
			t.Fatal(err)
		}
		if requests.Load() != 0 {
			t.Fatalf("Twilio was asked %d times to text an opted-out number; want 0", requests.Load())
		}
		if got := testenv.Entries(env.Timeline("V-stop"), "sms-skipped"); len(got) != 1 || !strings.Contains(got[0].Summary, "opted out") {
			t.Fatalf("timeline skipped entries = %v; want one saying opted out", got)
		}
		// The record is a keyed hash, not the number.
		keys := env.AllKeys(env.Key("vf:optout:*"))
		if len(keys) != 1 || strings.Contains(keys[0], "5550004") {
			t.Fatalf("opt-out keys = %v; want one hash", keys)
		}
	})
	t.Run("STOP and START texted in", func(t *testing.T) {
		env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{2 * time.Hour, time.Hour} })
		env.CreateEngineVisit(visitInput("V-kw", time.Now().Add(48*time.Hour), "UTC"))
		textIn(t, env, "stop")
		if err := testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-kw", Reminder: "r2h0m0s", Schedule: 0}); err != nil {
			t.Fatal(err)
		}
		if n := len(env.SMSTo(patientPhone)); n != 0 {
			t.Fatalf("SMS after STOP = %d; want 0", n)
		}
		textIn(t, env, "START")
		if err := testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-kw", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
			t.Fatal(err)
		}
		if n := len(env.SMSTo(patientPhone)); n != 1 {
			t.Fatalf("SMS after START = %d; want 1", n)
		}
	})
}

// textIn has the patient text body to our number through the emulator,
// which posts it signed to /twilio/sms/incoming.
func textIn(t *testing.T, env *testenv.Env, body string) sandbox.IncomingSMSResult {
	t.Helper()
	res, err := env.Sandbox.Client.IncomingSMS(context.Background(), patientPhone, body)
	if err != nil {
		t.Fatal(err)
	}
	if res.WebhookStatus != http.StatusOK {
		t.Fatalf("inbound %q: emulator says %+v; want our webhook to answer 200", body, res)
	}
	return res
}

func TestHelpIsAnsweredWithTwiML(t *testing.T) {
	env := newSMSEnv(t)
	out := textIn(t, env, "help")
	if !slices.ContainsFunc(out.Replies, func(m sandbox.MessageView) bool { return strings.Contains(m.Body, "Reply STOP") }) {
		t.Fatalf("emulator result %+v; want our HELP reply", out)
	}
}

// Only a whole-body keyword opts out, as Twilio itself does; Twilio's
// OptOutType wins when the webhook carries it.
func TestSMSKeywordsAsTwilio(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	for _, tt := range []struct {
		body     string
		optedOut bool
	}{
		{"Stop please", false},
		{"Cancel my appointment", false},
		{"STOP", true},
		{"START", false},
		{" revoke ", true},
		{"unstop", false},
		{"OptOut", true},
	} {
		textIn(t, env, "START") // from a clean record
		textIn(t, env, tt.body)
		if got := optedOut(t, env); got != tt.optedOut {
			t.Errorf("after %q: opted out %v; want %v", tt.body, got, tt.optedOut)
		}
	}
}

// With Advanced Opt-Out Twilio tells the webhook what it decided
// (OptOutType), custom keywords included, and answers HELP itself.
func TestSMSOptOutTypeFromTwilioWins(t *testing.T) {
	env := testenv.New(t, testenv.WithSandbox(func(o *sandbox.Options) {
		o.AdvancedOptOut = true
		o.OptOutKeywords = map[string]string{"arret": "STOP"}
	}))
	textIn(t, env, "arret") // a word only the Messaging Service knows
	if !optedOut(t, env) {
		t.Fatal("OptOutType=STOP did not opt out")
	}
	out := textIn(t, env, "help")
	if out.TwilioReply == nil || len(out.Replies) != 0 {
		t.Fatalf("HELP with OptOutType: %+v; want Twilio's reply and none of ours", out)
	}
}

// optedOut reports whether a reminder to the patient now would be skipped
// as opted out.
func optedOut(t *testing.T, env *testenv.Env) bool {
	t.Helper()
	id := fmt.Sprintf("V-kw%d", time.Now().UnixNano())
	env.CreateEngineVisit(visitInput(id, time.Now().Add(48*time.Hour), "UTC"))
	_ = testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: id, Reminder: "r1h0m0s", Schedule: 0})
	skipped := testenv.Entries(env.Timeline(id), "sms-skipped")
	return len(skipped) == 1 && strings.Contains(skipped[0].Summary, "opted out")
}

type countingTwilio struct {
	workflows.Twilio
	n *atomic.Int32
}

func (c *countingTwilio) SendSMS(ctx context.Context, p twilioapi.SendSMSParams) (twilioapi.Message, error) {
	c.n.Add(1)
	return c.Twilio.SendSMS(ctx, p)
}

func TestSMSRetriedAfterConnectionRefused(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour} })
	down := env.NewTwilio("http://127.0.0.1:1")
	env.CreateEngineVisit(visitInput("V-refused", time.Now().Add(48*time.Hour), "UTC"))
	p := workflows.Payload{VisitID: "V-refused", Reminder: "r1h0m0s", Schedule: 0}
	if err := testenv.Process(newEngine(env, down, nil), workflows.TypeReminderSend, p); err == nil {
		t.Fatal("attempt with Twilio unreachable returned nil; want an error so Asynq retries")
	}
	if err := testenv.Process(env.Engine, workflows.TypeReminderSend, p); err != nil {
		t.Fatalf("retry = %v; want sent at once (the claim was released)", err)
	}
	if n := len(env.SMS()); n != 1 {
		t.Fatalf("SMS = %d; want 1", n)
	}
}

func TestStatusCallback21610MarksOptOut(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = []time.Duration{2 * time.Hour, time.Hour} })
	env.CreateEngineVisit(visitInput("V-21610", time.Now().Add(48*time.Hour), "UTC"))
	form := url.Values{"MessageSid": {"SM0000000000000000000000000000abcd"}, "MessageStatus": {"undelivered"},
		"ErrorCode": {"21610"}, "To": {patientPhone}, "AccountSid": {env.Config.Twilio.AccountSID}}
	path := "/twilio/sms/status?visit=V-21610&purpose=reminder%3Ar2h0m0s%3As0"
	post := func(sign bool) int {
		if sign {
			return env.PostSigned(path, form).StatusCode
		}
		return env.PostForm(path, form).StatusCode
	}
	if code := post(false); code != http.StatusForbidden {
		t.Fatalf("unsigned status callback = %d; want 403", code)
	}
	if code := post(true); code != http.StatusNoContent {
		t.Fatalf("status callback = %d; want 204", code)
	}
	tl := env.Timeline("V-21610")
	if len(testenv.Entries(tl, "sms-opted-out")) != 1 || !strings.Contains(testenv.Entries(tl, "sms-undelivered")[0].Summary, "error 21610") {
		t.Fatalf("timeline = %+v; want undelivered with 21610 and an opted-out entry", tl)
	}
	if err := testenv.Process(env.Engine, workflows.TypeReminderSend, workflows.Payload{VisitID: "V-21610", Reminder: "r1h0m0s", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	if n := len(env.SMS()); n != 0 {
		t.Fatalf("SMS to an opted-out number = %d; want 0", n)
	}
}

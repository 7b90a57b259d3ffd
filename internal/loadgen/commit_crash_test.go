package loadgen_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

const (
	webEnv          = "VISITFLOW_CRASH_WEB_REDIS"     // run as a web replica on this Redis
	webNamespaceEnv = "VISITFLOW_CRASH_WEB_NAMESPACE" // its redis.namespace
	webPublicEnv    = "VISITFLOW_CRASH_WEB_PUBLIC"    // its http.public_base_url
	crashPublicURL  = "https://visitflow.example"     // both replicas' public URL, as behind a load balancer
)

// hangingQueue hands its first task to Asynq, then prints "hanging <task
// ID>" and never returns: the web replica is stopped between the commit and
// the hand-off of the change's jobs, with one of them already in Asynq.
type hangingQueue struct {
	asynq *asynq.Client
	calls atomic.Int32
}

func (q *hangingQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if q.calls.Add(1) == 1 {
		return q.asynq.EnqueueContext(ctx, task, opts...)
	}
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			fmt.Printf("hanging %v\n", o.Value())
		}
	}
	select {} // killed here
}

// TestWebProcess is not a real test: TestWebKilledBetweenCommitAndEnqueue
// runs the test binary again with webEnv set to get a web replica it can
// SIGKILL. It serves the real HTTP edge on the given Redis, with its Asynq
// client behind hangingQueue, and prints "listening <url>".
func TestWebProcess(t *testing.T) {
	url := os.Getenv(webEnv)
	if url == "" {
		t.Skip("helper for TestWebKilledBetweenCommitAndEnqueue")
	}
	var q *hangingQueue
	w := testenv.New(t, testenv.RedisURL(url), testenv.Configure(func(c *config.Config) {
		c.Redis.Namespace = os.Getenv(webNamespaceEnv)
		c.HTTP.PublicBaseURL = os.Getenv(webPublicEnv)
	}), testenv.Engine(func(d *workflows.Deps) {
		q = &hangingQueue{asynq: d.Queue.(*asynq.Client)}
		d.Queue = q
	}))
	fmt.Printf("listening %s\n", w.URL)
	select {}
}

// TestWebKilledBetweenCommitAndEnqueue kills (SIGKILL) a web replica after
// a callback's change committed and while its jobs were being handed to
// Asynq: the first already there, the second not. Twilio retries the
// unanswered callback on the other replica, where it is a duplicate; the
// sweeper hands the stranded jobs to Asynq. Every job runs, and runs once:
// the provider gets one patient-waiting SMS, one provider-late check is
// scheduled, and the outbox ends empty.
func TestWebKilledBetweenCommitAndEnqueue(t *testing.T) {
	url := redistest.ForTest(t)
	ns := redistest.Namespace(t)
	survivor := testenv.New(t, testenv.RedisURL(url), testenv.WithSandbox(nil), testenv.Configure(func(c *config.Config) {
		c.Redis.Namespace = ns
		c.HTTP.PublicBaseURL = crashPublicURL
	}))
	const id = "V-crash"
	body := testenv.VisitBody(id)
	body["scheduled_at"] = time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	survivor.CreateVisit(body)

	doomed, lines := startTestProcess(t, "TestWebProcess", webEnv+"="+url, webNamespaceEnv+"="+ns, webPublicEnv+"="+crashPublicURL)
	next := func(prefix string) string {
		t.Helper()
		select {
		case l := <-lines:
			if !strings.HasPrefix(l, prefix) {
				t.Fatalf("web replica said %q; want %q…", l, prefix)
			}
			return strings.TrimPrefix(l, prefix)
		case <-time.After(time.Minute):
			t.Fatalf("web replica never said %q", prefix)
		}
		return ""
	}
	doomedURL := next("listening ")

	// The patient joins through the doomed replica: scheduled → waiting,
	// whose jobs check on the provider later and tell the provider now.
	join := loadgen.Callback{VisitID: id, Event: "participant-connected",
		ParticipantSID: "PA00000000000000000000000000000001", Identity: "pat-8812"}
	o := loadgen.Options{BaseURL: doomedURL, PublicBaseURL: crashPublicURL, AuthToken: authToken,
		Client: &http.Client{Timeout: time.Minute}}
	answered := make(chan int, 1)
	go func() { answered <- loadgen.Resend(context.Background(), o, join) }()
	hung := next("hanging ")
	if want := id + ":visit:patient-waiting-sms:t1"; hung != want {
		t.Fatalf("the replica hung handing over %s; want %s (the second job)", hung, want)
	}
	if err := doomed.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = doomed.Wait()
	if status := <-answered; status == http.StatusNoContent {
		t.Fatal("the killed replica acknowledged the callback")
	}

	// Twilio retries the callback, this time on the surviving replica.
	o.BaseURL = survivor.URL
	if status := loadgen.Resend(context.Background(), o, join); status != http.StatusNoContent {
		t.Fatalf("retried callback = %d; want 204", status)
	}
	if n, err := survivor.Engine.SweepOutbox(context.Background(), false); err != nil || n != 2 {
		t.Fatalf("SweepOutbox() = %d, %v; want the 2 stranded jobs re-sent", n, err)
	}
	survivor.StartWorkers(survivor.Engine)
	survivor.WaitTaskDone(survivor.QueueName(workflows.QueueDefault), hung)
	if n := len(survivor.SMSTo(testenv.ProviderPhone)); n != 1 {
		t.Errorf("provider got %d patient-waiting SMS; want 1", n)
	}
	late := 0
	for _, task := range survivor.ScheduledIDs(workflows.QueueDefault) {
		if strings.HasPrefix(task, id+":visit:provider-late-check:") {
			late++
		}
	}
	if late != 1 {
		t.Errorf("provider-late checks scheduled = %d; want 1", late)
	}
	if jobs, _ := survivor.Store.Outbox(context.Background(), id); len(jobs) != 0 {
		t.Errorf("outbox after the sweep = %v; want empty", jobs)
	}
	if n, _ := survivor.Engine.SweepOutbox(context.Background(), true); n != 0 {
		t.Errorf("a full sweep afterwards re-sent %d jobs; want 0", n)
	}
}

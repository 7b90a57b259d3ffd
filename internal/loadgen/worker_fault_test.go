package loadgen_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/workflows"
)

const (
	workerEnv          = "VISITFLOW_FAULT_WORKER_REDIS"     // run as a worker process on this Redis
	workerBlockEnv     = "VISITFLOW_FAULT_WORKER_BLOCK"     // "1": hang in every job, as if stuck mid-job
	workerNamespaceEnv = "VISITFLOW_FAULT_WORKER_NAMESPACE" // the redis.namespace it works in
	workerTwilio       = "VISITFLOW_FAULT_WORKER_TWILIO"    // the worker's Twilio REST base URL (testenv credentials)
	workerApp          = "VISITFLOW_FAULT_WORKER_APP"       // the web replica's URL (public_base_url)
	workerConc         = "VISITFLOW_FAULT_WORKER_CONC"      // the worker's concurrency (default 1)
	workerTimeout      = "VISITFLOW_FAULT_WORKER_TIMEOUT"   // the worker's twilio.request_timeout (default 2s)
)

// TestWorkerProcess is not a real test: TestWorkerKilledMidJob runs the test
// binary again with workerEnv set to get a worker process it can SIGKILL. The
// worker is wired as cmd/visitflow wires one (engine handlers on an Asynq
// server), with a 1 s retry delay so the recovered job is retried promptly.
func TestWorkerProcess(t *testing.T) {
	url := os.Getenv(workerEnv)
	if url == "" {
		t.Skip("helper for TestWorkerKilledMidJob")
	}
	conn, err := redisx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Redis.Namespace = os.Getenv(workerNamespaceEnv)
	deps := workflows.Deps{Store: store.New(conn.Client, store.WithNamespace(cfg.Redis.Namespace)),
		Queue: asynq.NewClientFromRedisClient(conn.Client), Deleter: asynq.NewInspectorFromRedisClient(conn.Client)}
	if api := os.Getenv(workerTwilio); api != "" {
		cfg.Twilio.AccountSID, cfg.Twilio.AuthToken = testenv.AccountSID, testenv.AuthToken
		cfg.Twilio.APIURL, cfg.Twilio.RequestTimeout = api, 2*time.Second
		if d, err := time.ParseDuration(os.Getenv(workerTimeout)); err == nil {
			cfg.Twilio.RequestTimeout = d
		}
		cfg.HTTP.PublicBaseURL = os.Getenv(workerApp)
		tw, err := twilioapi.New(twilioapi.Config{AccountSID: testenv.AccountSID, AuthToken: testenv.AuthToken,
			FromNumber: cfg.Twilio.FromNumber, APIURL: api, Timeout: cfg.Twilio.RequestTimeout}, nil)
		if err != nil {
			t.Fatal(err)
		}
		deps.Twilio = tw
	}
	deps.Config = cfg
	engine := workflows.New(deps)
	concurrency, _ := strconv.Atoi(os.Getenv(workerConc))
	srv := asynq.NewServerFromRedisClient(conn.Client, asynq.Config{
		Concurrency: max(concurrency, 1), Queues: workflows.Queues(cfg.Redis.Namespace), LogLevel: asynq.ErrorLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Second },
		IsFailure:      workflows.CountsAsFailure,
	})
	mux := asynq.NewServeMux()
	if os.Getenv(workerBlockEnv) == "1" {
		mux.Use(func(next asynq.Handler) asynq.Handler {
			return asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
				id, _ := asynq.GetTaskID(ctx)
				fmt.Printf("started %s\n", id)
				select {} // killed here
			})
		})
	}
	engine.Register(mux)
	if err := srv.Run(mux); err != nil {
		t.Fatal(err)
	}
}

// startWorker runs a worker process; its stdout lines arrive on the
// channel. env adds workerTwilio and the like.
func startWorker(t *testing.T, redisURL, namespace string, block bool, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	env = append([]string{workerEnv + "=" + redisURL, workerNamespaceEnv + "=" + namespace}, env...)
	if block {
		env = append(env, workerBlockEnv+"=1")
	}
	return startTestProcess(t, "TestWorkerProcess", env...)
}

// startTestProcess runs this test binary again as the helper test named
// test, with env added, and kills it when t ends; its stdout lines arrive
// on the channel.
func startTestProcess(t *testing.T, test string, env ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return cmd, lines
}

type timelineEntry struct {
	Type    string `json:"type"`
	Summary string `json:"summary"`
}

func timeline(w *testenv.Env, id string) []timelineEntry {
	w.T.Helper()
	var v struct {
		Timeline []timelineEntry `json:"timeline"`
	}
	w.VisitInto(id, &v)
	return v.Timeline
}

func TestWorkerKilledMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Asynq's 30 s lease to expire")
	}
	t.Parallel() // the lease waits overlap
	url := redistest.ForTest(t)
	ns := redistest.Namespace(t)
	w := testenv.New(t, testenv.RedisURL(url), testenv.WithSandbox(nil),
		testenv.Configure(func(c *config.Config) { c.Redis.Namespace = ns }))
	o := loadgen.Options{BaseURL: w.URL, AuthToken: authToken, APIToken: apiToken, RunID: "w", Visits: 1, Callbacks: 1}
	ctx := context.Background()
	// Hours ahead, so no job of its schedule falls due while the worker is stuck.
	body := testenv.VisitBody(o.VisitID(0))
	body["scheduled_at"] = time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	w.CreateVisit(body)
	// The patient joins: scheduled → waiting, whose job texts the provider.
	if status := loadgen.Resend(ctx, o, loadgen.Callback{VisitID: o.VisitID(0), Event: "participant-connected",
		ParticipantSID: "PA00000000000000000000000000000001", Identity: "pat-8812"}); status != http.StatusNoContent {
		t.Fatalf("callback = %d; want 204", status)
	}

	twilioEnv := []string{workerTwilio + "=" + w.Sandbox.URL, workerApp + "=" + w.URL}
	stuck, lines := startWorker(t, url, ns, true, twilioEnv...)
	taskID := o.VisitID(0) + ":visit:patient-waiting-sms:t1"
	select {
	case l := <-lines:
		if got := strings.TrimPrefix(l, "started "); got != taskID {
			t.Fatalf("the worker started %s; want %s", got, taskID)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the worker never started the job")
	}
	if err := stuck.Process.Kill(); err != nil { // SIGKILL, mid-job
		t.Fatal(err)
	}
	stuck.Wait()
	if n := len(w.SMSTo(testenv.ProviderPhone)); n != 0 {
		t.Fatalf("provider SMS before the job was recovered = %d; want 0", n)
	}

	// A new worker recovers the job once its lease has expired and runs it, once.
	startWorker(t, url, ns, false, twilioEnv...)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		info, err := w.Inspector.GetTaskInfo(w.QueueName(workflows.QueueDefault), taskID)
		if err == nil && info.State == asynq.TaskStateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never completed after the worker was killed: %v, %v", taskID, info, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(w.SMSTo(testenv.ProviderPhone)); n != 1 {
		t.Fatalf("job %s sent the provider %d SMS; want 1", taskID, n)
	}
	// Nothing of it is left in the queues to run again.
	inspector := w.Inspector
	for _, q := range workflows.QueueNames(ns) {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			inspector.ListPendingTasks, inspector.ListActiveTasks, inspector.ListRetryTasks, inspector.ListScheduledTasks,
		} {
			tasks, err := list(q)
			if errors.Is(err, asynq.ErrQueueNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range tasks {
				if task.ID == taskID {
					t.Errorf("job %s still queued (%s) after it completed", taskID, task.State)
				}
			}
		}
	}
}

// TestWorkerKilledMidSendSendsEachReminderOnce kills (SIGKILL) a worker
// while every one of its reminder sends is in flight: half of them had
// reached Twilio, half had not. A new worker recovers the jobs once their
// lease expired and settles each by asking Twilio: every patient gets
// exactly one reminder, none twice, none lost.
func TestWorkerKilledMidSendSendsEachReminderOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Asynq's 30 s lease to expire")
	}
	t.Parallel() // the lease waits overlap
	const visits = 10
	url := redistest.ForTest(t)
	ns := redistest.Namespace(t)
	w := testenv.New(t, testenv.RedisURL(url), testenv.WithSandbox(nil),
		testenv.Configure(func(c *config.Config) { c.Redis.Namespace = ns }))
	// A front to the emulator that holds every message request of the
	// first worker (answering none), passing every second one on first.
	var held atomic.Int32
	arrived := make(chan struct{}, visits)
	var holding atomic.Bool
	holding.Store(true)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json") && holding.Load() {
			body, _ := io.ReadAll(r.Body)
			if held.Add(1)%2 == 0 {
				forward(w, r, body)
			}
			arrived <- struct{}{}
			<-r.Context().Done() // the worker dies waiting
			return
		}
		body, _ := io.ReadAll(r.Body)
		resp := forward(w, r, body)
		for k, v := range resp.header {
			rw.Header()[k] = v
		}
		rw.WriteHeader(resp.status)
		_, _ = rw.Write(resp.body)
	}))
	t.Cleanup(front.Close)

	ctx := context.Background()
	for i := range visits {
		body := testenv.VisitBody(fmt.Sprintf("V-kill-%d", i))
		body["scheduled_at"] = time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
		w.CreateVisit(body)
		payload, _ := json.Marshal(workflows.Payload{VisitID: fmt.Sprintf("V-kill-%d", i), Reminder: "r1h0m0s"})
		if _, err := w.Queue.EnqueueContext(ctx, asynq.NewTask(workflows.TypeReminderSend, payload),
			asynq.Queue(w.QueueName(workflows.QueueDefault)), asynq.MaxRetry(10)); err != nil {
			t.Fatal(err)
		}
	}
	twilioEnv := []string{workerTwilio + "=" + front.URL, workerApp + "=" + w.URL}
	// Its requests would wait a minute: it dies first.
	doomed, _ := startWorker(t, url, ns, false, append(twilioEnv, workerConc+"="+strconv.Itoa(visits), workerTimeout+"=1m")...)
	for range visits {
		select {
		case <-arrived:
		case <-time.After(time.Minute):
			t.Fatalf("only %d of %d sends reached the front", held.Load(), visits)
		}
	}
	if err := doomed.Process.Kill(); err != nil { // SIGKILL, mid-send
		t.Fatal(err)
	}
	_ = doomed.Wait()
	holding.Store(false)
	if n := len(w.SMSTo(testenv.PatientPhone)); n != visits/2 {
		t.Fatalf("SMS at Twilio after the kill = %d; want %d (every second send got through)", n, visits/2)
	}

	startWorker(t, url, ns, false, twilioEnv...)
	deadline := time.Now().Add(75 * time.Second)
	for {
		settled := 0
		for i := range visits {
			for _, e := range timeline(w, fmt.Sprintf("V-kill-%d", i)) {
				if e.Type == "sms-accepted" || e.Type == "sms-confirmed" || e.Type == "sms-outcome-unknown" {
					settled++
				}
			}
		}
		if settled == visits {
			break
		}
		if time.Now().After(deadline) {
			for i := range visits {
				t.Logf("V-kill-%d: %+v", i, timeline(w, fmt.Sprintf("V-kill-%d", i)))
			}
			t.Fatalf("%d of %d reminders settled 75 s after the kill", settled, visits)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Each visit's reminder is settled once: by its status callback, by
	// finding it at Twilio, or by sending it after the restart (the half that
	// never reached Twilio). Twilio holds exactly one per visit.
	for i := range visits {
		n := 0
		for _, e := range timeline(w, fmt.Sprintf("V-kill-%d", i)) {
			switch e.Type {
			case "sms-outcome-unknown":
				t.Errorf("V-kill-%d: %s; want settled", i, e.Summary)
			case "sms-confirmed", "sms-accepted":
				n++
			}
		}
		if n != 1 {
			t.Errorf("V-kill-%d settled %d times; want once", i, n)
		}
	}
	if n := len(w.SMSTo(testenv.PatientPhone)); n != visits {
		t.Fatalf("SMS at Twilio = %d; want %d, one per visit", n, visits)
	}
}

type forwarded struct {
	status int
	header http.Header
	body   []byte
}

// forward passes a request on to w's emulator and returns its answer.
func forward(w *testenv.Env, r *http.Request, body []byte) forwarded {
	req, _ := http.NewRequest(r.Method, w.Sandbox.URL+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return forwarded{status: http.StatusBadGateway}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return forwarded{status: resp.StatusCode, header: resp.Header, body: b}
}

package loadgen_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

const (
	workerEnv          = "VISITFLOW_FAULT_WORKER_REDIS"     // run as a worker process on this Redis
	workerBlockEnv     = "VISITFLOW_FAULT_WORKER_BLOCK"     // "1": hang in every job, as if stuck mid-job
	workerNamespaceEnv = "VISITFLOW_FAULT_WORKER_NAMESPACE" // the redis.namespace it works in
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
	engine := workflows.New(workflows.Deps{Store: store.New(conn.Client, store.WithNamespace(cfg.Redis.Namespace)),
		Queue: asynq.NewClientFromRedisClient(conn.Client), Deleter: asynq.NewInspectorFromRedisClient(conn.Client),
		Config: cfg})
	srv := asynq.NewServerFromRedisClient(conn.Client, asynq.Config{
		Concurrency: 1, Queues: workflows.Queues(cfg.Redis.Namespace), LogLevel: asynq.ErrorLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Second },
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

// startWorker runs a worker process; its stdout lines arrive on the channel.
func startWorker(t *testing.T, redisURL, namespace string, block bool) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), workerEnv+"="+redisURL, workerNamespaceEnv+"="+namespace)
	if block {
		cmd.Env = append(cmd.Env, workerBlockEnv+"=1")
	}
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
	url := redistest.ForTest(t)
	ns := redistest.Namespace(t)
	w := startWeb(t, url, ns, "")
	o := loadgen.Options{BaseURL: w.URL, AuthToken: authToken, APIToken: apiToken, RunID: "w", Visits: 1, Callbacks: 1}
	ctx := context.Background()
	if err := loadgen.Setup(ctx, o); err != nil {
		t.Fatal(err)
	}
	// The patient joins: scheduled → waiting, whose state-changed job goes to Asynq.
	if status := loadgen.Resend(ctx, o, loadgen.Callback{VisitID: o.VisitID(0), Event: "participant-connected",
		ParticipantSID: "PA00000000000000000000000000000001", Identity: "pat-" + o.VisitID(0)}); status != http.StatusNoContent {
		t.Fatalf("callback = %d; want 204", status)
	}

	stuck, lines := startWorker(t, url, ns, true)
	var taskID string
	select {
	case l := <-lines:
		taskID = strings.TrimPrefix(l, "started ")
	case <-time.After(60 * time.Second):
		t.Fatal("the worker never started the job")
	}
	if err := stuck.Process.Kill(); err != nil { // SIGKILL, mid-job
		t.Fatal(err)
	}
	stuck.Wait()

	// A new worker recovers the job once its lease has expired and runs it.
	startWorker(t, url, ns, false)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var n int
		for _, e := range timeline(w, o.VisitID(0)) {
			if e.Type == "state-changed" {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("job %s ran %d times; want once", taskID, n)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never completed after the worker was killed", taskID)
		}
		time.Sleep(200 * time.Millisecond)
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

package redisx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
)

// TestAsynq runs the Asynq features visitflow relies on against the embedded
// miniredis and a real redis-server: enqueue with a task ID and process it,
// delayed tasks, retries, unique tasks, the Inspector (what asynqmon shows)
// and the periodic-task Scheduler.
func TestAsynq(t *testing.T) {
	backends := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"embedded", func(*testing.T) string { return "" }},
		{"redis-server", func(t *testing.T) string { return redistest.ForTest(t) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			c, err := redisx.Connect(context.Background(), b.url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			exerciseAsynq(t, c.Asynq)
		})
	}
}

// asynqLog collects Asynq's log lines; they are shown only when the test
// fails, and never through t after the test has ended.
type asynqLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *asynqLog) add(level string, args ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+": "+fmt.Sprint(args...))
}
func (l *asynqLog) Debug(args ...interface{}) {}
func (l *asynqLog) Info(args ...interface{})  {}
func (l *asynqLog) Warn(args ...interface{})  { l.add("WARN", args...) }
func (l *asynqLog) Error(args ...interface{}) { l.add("ERROR", args...) }
func (l *asynqLog) Fatal(args ...interface{}) { l.add("FATAL", args...) }
func (l *asynqLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func exerciseAsynq(t *testing.T, opt asynq.RedisConnOpt) {
	ctx := context.Background()
	// A queue of this test's own: a shared Redis (the CI Cluster) may hold
	// other tests' and earlier runs' tasks under the same task IDs.
	queue := redistest.Namespace(t) + ":default"
	inQueue := asynq.Queue(queue)
	log := &asynqLog{}
	defer func() {
		if t.Failed() {
			t.Logf("asynq log:\n%s", log)
		}
	}()

	got := make(chan string, 100)
	var mu sync.Mutex
	attempts := map[string]int{}
	mux := asynq.NewServeMux()
	mux.HandleFunc("test:echo", func(ctx context.Context, task *asynq.Task) error {
		got <- "echo:" + string(task.Payload())
		return nil
	})
	mux.HandleFunc("test:flaky", func(ctx context.Context, task *asynq.Task) error {
		mu.Lock()
		attempts[string(task.Payload())]++
		n := attempts[string(task.Payload())]
		mu.Unlock()
		if n == 1 {
			return errors.New("first attempt fails")
		}
		got <- fmt.Sprintf("flaky:%s:%d", task.Payload(), n)
		return nil
	})
	mux.HandleFunc("test:tick", func(ctx context.Context, task *asynq.Task) error {
		got <- "tick"
		return nil
	})

	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:              2,
		Queues:                   map[string]int{queue: 1},
		Logger:                   log,
		DelayedTaskCheckInterval: 50 * time.Millisecond,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond },
		ShutdownTimeout:          2 * time.Second,
		TaskCheckInterval:        50 * time.Millisecond,
	})
	if err := srv.Start(mux); err != nil {
		t.Fatalf("asynq server Start: %v", err)
	}
	defer srv.Shutdown()
	client := asynq.NewClient(opt)
	defer client.Close()

	wait := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case g := <-got:
				if g == want {
					return
				}
				t.Logf("processed %q while waiting for %q", g, want)
			case <-deadline:
				t.Errorf("task %q not processed within %v", want, within)
				return
			}
		}
	}

	t.Run("enqueue and process", func(t *testing.T) {
		// A task ID is taken only while the task exists: Retention keeps it
		// after processing, so the conflict does not depend on timing.
		opts := []asynq.Option{inQueue, asynq.TaskID("echo-a"), asynq.Retention(time.Hour)}
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("test:echo", []byte("a")), opts...); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		_, err := client.EnqueueContext(ctx, asynq.NewTask("test:echo", []byte("a")), opts...)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Errorf("second Enqueue with the same TaskID: %v; want ErrTaskIDConflict", err)
		}
		wait("echo:a", 5*time.Second)
	})
	t.Run("delayed", func(t *testing.T) {
		// Asynq stores the due time in whole Unix seconds (truncated), so a
		// task may run up to 1 s early; 2 s must not run before 1 s.
		start := time.Now()
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("test:echo", []byte("later")), inQueue, asynq.ProcessIn(2*time.Second)); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		wait("echo:later", 5*time.Second)
		if d := time.Since(start); d < time.Second {
			t.Errorf("task due in 2s processed after %v; want >= 1s", d)
		}
	})
	t.Run("retry", func(t *testing.T) {
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("test:flaky", []byte("r")), inQueue, asynq.MaxRetry(3)); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		wait("flaky:r:2", 5*time.Second)
	})
	t.Run("unique", func(t *testing.T) {
		task := asynq.NewTask("test:echo", []byte("u"))
		if _, err := client.EnqueueContext(ctx, task, inQueue, asynq.Unique(time.Minute), asynq.ProcessIn(time.Hour)); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		_, err := client.EnqueueContext(ctx, task, inQueue, asynq.Unique(time.Minute), asynq.ProcessIn(time.Hour))
		if !errors.Is(err, asynq.ErrDuplicateTask) {
			t.Errorf("second unique Enqueue: %v; want ErrDuplicateTask", err)
		}
	})
	t.Run("inspector", func(t *testing.T) {
		insp := asynq.NewInspector(opt)
		defer insp.Close()
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("test:echo", []byte("i")), inQueue, asynq.TaskID("insp"), asynq.ProcessIn(time.Hour)); err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		if _, err := insp.GetQueueInfo(queue); err != nil {
			t.Errorf("Inspector.GetQueueInfo: %v", err)
		}
		if _, err := insp.History(queue, 2); err != nil {
			t.Errorf("Inspector.History: %v", err)
		}
		if _, err := insp.Servers(); err != nil {
			t.Errorf("Inspector.Servers: %v", err)
		}
		tasks, err := insp.ListScheduledTasks(queue)
		if err != nil {
			t.Errorf("Inspector.ListScheduledTasks: %v", err)
		}
		found := false
		for _, ti := range tasks {
			found = found || ti.ID == "insp"
		}
		if !found {
			t.Errorf("Inspector.ListScheduledTasks does not list task insp")
		}
		if err := insp.DeleteTask(queue, "insp"); err != nil {
			t.Errorf("Inspector.DeleteTask: %v", err)
		}
	})
	t.Run("scheduler", func(t *testing.T) {
		sch := asynq.NewScheduler(opt, &asynq.SchedulerOpts{Logger: log})
		if _, err := sch.Register("@every 1s", asynq.NewTask("test:tick", nil), inQueue); err != nil {
			t.Fatalf("Scheduler.Register: %v", err)
		}
		if err := sch.Start(); err != nil {
			t.Fatalf("Scheduler.Start: %v", err)
		}
		defer sch.Shutdown()
		wait("tick", 5*time.Second)
	})
}

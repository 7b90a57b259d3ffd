// Command reminderbench measures reminder scheduling against a real Redis
// (docs/benchmarks.md, "Reminders"):
//
//   - create: visits created through POST /v1/visits/batch (a room, 3
//     reminders and a no-show check each, held by one timer task): visits/s
//     and Redis memory per scheduled visit (INFO memory before and after,
//     the batch requests' audit records included);
//   - due: N reminders due within the same minute, processed by real Asynq
//     workers: p50/p99 lateness from the due time to the REST request
//     reaching the Twilio emulator.
//
// It FLUSHES the Redis database it is given. Usage:
//
//	redis-server --port 6390 --save '' &
//	go run ./cmd/reminderbench -redis redis://127.0.0.1:6390/0 -visits 100000 -due 10000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/workflows"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reminderbench:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("reminderbench", flag.ContinueOnError)
	redisURL := fs.String("redis", "", "Redis URL (required; its database is FLUSHED unless -namespace is given)")
	namespace := fs.String("namespace", "", "redis.namespace to run in instead of flushing the database (each measurement in its own <namespace>-create, <namespace>-due)")
	visits := fs.Int("visits", 10000, "visits to create through the batch API (0 skips)")
	batch := fs.Int("batch", workflows.BatchLimit, "visits per batch request")
	due := fs.Int("due", 1000, "reminders due within the same minute (0 skips)")
	concurrency := fs.Int("concurrency", 50, "Asynq worker concurrency for the due run")
	window := fs.Duration("window", time.Minute, "the due reminders are spread over this window")
	check := fs.Duration("check", workflows.DelayedTaskCheckInterval, "Asynq DelayedTaskCheckInterval (serve.go's value by default)")
	lead := fs.Duration("lead", 0, "time from start until the window opens (0: 30s + 1ms per reminder, enough to create them)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the create run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *redisURL == "" {
		return fmt.Errorf("-redis is required")
	}
	ctx := context.Background()
	conn, err := redisx.Connect(ctx, *redisURL)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Each measurement starts from an empty keyspace: a flushed database,
	// or a namespace of its own on a Redis shared with others.
	fresh := func(phase string) (string, error) {
		if *namespace != "" {
			return *namespace + "-" + phase, nil
		}
		return "", conn.Client.FlushDB(ctx).Err()
	}
	createNS, err := fresh("create")
	if err != nil {
		return err
	}
	b := newBench(conn, *concurrency, createNS)
	b.checkInterval = *check
	defer b.close()
	if *visits > 0 {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
		}
		err := b.create(ctx, out, *visits, *batch)
		pprof.StopCPUProfile()
		if err != nil {
			return err
		}
	}
	if *due > 0 {
		if b.cfg.Redis.Namespace, err = fresh("due"); err != nil {
			return err
		}
		return b.dueInOneMinute(ctx, out, *due, *window, *lead)
	}
	return nil
}

type bench struct {
	conn        *redisx.Conn
	cfg         config.Config
	engine      *workflows.Engine
	app, emu    *http.Server
	appURL      string
	emuURL      string
	concurrency int
	// checkInterval is Asynq's DelayedTaskCheckInterval, as serve.go sets it.
	checkInterval time.Duration

	mu      sync.Mutex
	arrived map[string]time.Time // To → when its first message request reached the emulator
}

func serve(h http.Handler) (*http.Server, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String()
}

func newBench(conn *redisx.Conn, concurrency int, namespace string) *bench {
	b := &bench{conn: conn, arrived: map[string]time.Time{}, concurrency: concurrency}
	appMux := http.NewServeMux()
	b.app, b.appURL = serve(appMux)
	emu := sandbox.New(sandbox.Options{})
	emuHandler := emu.Handler()
	b.emu, b.emuURL = serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Messages.json") {
			now := time.Now()
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if err := r.ParseForm(); err == nil {
				b.mu.Lock()
				if _, ok := b.arrived[r.PostForm.Get("To")]; !ok {
					b.arrived[r.PostForm.Get("To")] = now
				}
				b.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		emuHandler.ServeHTTP(w, r)
	}))
	cfg := config.Default()
	cfg.Twilio.AccountSID, cfg.Twilio.AuthToken = sandbox.DefaultAccountSID, sandbox.DefaultAuthToken
	cfg.Twilio.APIURL = b.emuURL
	cfg.HTTP.PublicBaseURL = b.appURL
	cfg.API.Token = "bench"
	cfg.Visits.QuietHours = config.QuietHours{} // all three reminders distinct
	cfg.Redis.Namespace = namespace
	b.cfg = cfg
	tw, err := twilioapi.New(twilioapi.Config{AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
		FromNumber: cfg.Twilio.FromNumber, APIURL: cfg.Twilio.APIURL}, nil)
	if err != nil {
		panic(err)
	}
	b.engine = workflows.New(workflows.Deps{Store: store.New(conn.Client, store.WithNamespace(namespace)), Queue: asynq.NewClientFromRedisClient(conn.Client),
		Deleter: asynq.NewInspectorFromRedisClient(conn.Client), Twilio: tw, Config: cfg})
	appMux.Handle("/", handlers.NewServer(handlers.Deps{Engine: b.engine, Config: cfg}))
	return b
}

func (b *bench) close() {
	_ = b.app.Close()
	_ = b.emu.Close()
}

func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO memory has no used_memory")
}

func phone(i int) string { return fmt.Sprintf("+1555%07d", i) }

type item struct {
	ID          string         `json:"id"`
	ScheduledAt string         `json:"scheduled_at"`
	Timezone    string         `json:"timezone"`
	Provider    map[string]any `json:"provider"`
	Patient     map[string]any `json:"patient"`
}

func (b *bench) postBatch(items []item) error {
	body, _ := json.Marshal(items)
	req, _ := http.NewRequest(http.MethodPost, b.appURL+"/v1/visits/batch", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+b.cfg.API.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ans struct {
		Created, Failed int
	}
	err = json.NewDecoder(resp.Body).Decode(&ans)
	// Read to the end, so the connection is reused rather than closed
	// while the server is still writing the request's audit record.
	_, _ = io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("batch: status %d: %v", resp.StatusCode, err)
	}
	if ans.Created != len(items) {
		return fmt.Errorf("batch: created %d of %d (%d failed)", ans.Created, len(items), ans.Failed)
	}
	return nil
}

func makeItems(from, n int, at func(i int) time.Time) []item {
	items := make([]item, n)
	for k := range items {
		i := from + k
		items[k] = item{ID: fmt.Sprintf("B-%d", i), ScheduledAt: at(i).UTC().Format(time.RFC3339Nano), Timezone: "America/New_York",
			Provider: map[string]any{"identity": "dr-lee", "name": "Dr. Lee", "phone": "+15551230001"},
			Patient:  map[string]any{"identity": fmt.Sprintf("pat-%d", i), "name": "Sam", "phone": phone(i)}}
	}
	return items
}

// create measures visits/s through the batch API and Redis memory per visit.
func (b *bench) create(ctx context.Context, out io.Writer, n, per int) error {
	// The embedded miniredis (a machine without redis-server) has no INFO
	// memory: then visits/s is still measured and memory is reported n/a.
	before, memErr := usedMemory(ctx, b.conn.Client)
	at := time.Now().Add(72 * time.Hour)
	start := time.Now()
	for from := 0; from < n; from += per {
		if err := b.postBatch(makeItems(from, min(per, n-from), func(int) time.Time { return at })); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	// Each batch request's audit record (one per visit it created) is
	// written after its answer went out: wait for it, it is part of what a
	// visit costs.
	batches := (n + per - 1) / per
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		recs, _, err := b.engine.AuditTrail(ctx, audit.Query{From: start.Add(-time.Minute), Limit: 1000})
		if err != nil {
			return err
		}
		got := 0
		for _, r := range recs {
			if r.Action == "POST /v1/visits/batch" {
				got++
			}
		}
		if got >= batches {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create: %d of %d batch audit records after a minute", got, batches)
		}
	}
	memory := "n/a (this Redis has no INFO memory)"
	if after, err := usedMemory(ctx, b.conn.Client); err == nil && memErr == nil {
		memory = fmt.Sprintf("+%d bytes = %.0f bytes per scheduled visit", after-before, float64(after-before)/float64(n))
	}
	scheduled := 0
	for _, q := range workflows.QueueNames(b.cfg.Redis.Namespace) {
		if info, err := asynq.NewInspectorFromRedisClient(b.conn.Client).GetQueueInfo(q); err == nil {
			scheduled += info.Scheduled
		}
	}
	fmt.Fprintf(out, "create: %d visits in %s = %.0f visits/s; %d tasks scheduled; Redis used_memory %s\n",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), scheduled, memory)
	return nil
}

// dueInOneMinute schedules n reminders due spread over one minute, runs real
// workers, and reports how late each REST request reached the emulator.
func (b *bench) dueInOneMinute(ctx context.Context, out io.Writer, n int, window, lead time.Duration) error {
	b.cfg.Visits.ReminderOffsets = []time.Duration{time.Hour}
	// The engine reads its config at creation: make one for this run.
	if lead <= 0 {
		lead = 30*time.Second + time.Duration(n)*time.Millisecond // time to create them first
	}
	windowStart := time.Now().Add(lead)
	dueAt := func(i int) time.Time { return windowStart.Add(time.Duration(i) * window / time.Duration(n)) }
	cfg := b.cfg
	tw, _ := twilioapi.New(twilioapi.Config{AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
		FromNumber: cfg.Twilio.FromNumber, APIURL: cfg.Twilio.APIURL}, nil)
	engine := workflows.New(workflows.Deps{Store: store.New(b.conn.Client, store.WithNamespace(cfg.Redis.Namespace)), Queue: asynq.NewClientFromRedisClient(b.conn.Client),
		Deleter: asynq.NewInspectorFromRedisClient(b.conn.Client), Twilio: tw, Config: cfg})
	items := makeItems(0, n, func(i int) time.Time { return dueAt(i).Add(time.Hour) })
	created := engine.CreateVisits(ctx, toInputs(items))
	for _, c := range created {
		if c.Err != nil {
			return c.Err
		}
	}
	if time.Now().After(windowStart) {
		fmt.Fprintln(out, "due: warning: creating took longer than the lead; early reminders start late")
	}
	srv := asynq.NewServerFromRedisClient(b.conn.Client, asynq.Config{Concurrency: b.concurrency, Queues: workflows.Queues(cfg.Redis.Namespace),
		LogLevel: asynq.ErrorLevel, DelayedTaskCheckInterval: b.checkInterval})
	mux := asynq.NewServeMux()
	engine.Register(mux)
	if err := srv.Start(mux); err != nil {
		return err
	}
	defer srv.Shutdown()
	deadline := windowStart.Add(window + 2*time.Minute)
	for {
		b.mu.Lock()
		got := len(b.arrived)
		b.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var late []time.Duration
	b.mu.Lock()
	for i := 0; i < n; i++ {
		if t, ok := b.arrived[phone(i)]; ok {
			late = append(late, t.Sub(dueAt(i)))
		}
	}
	b.mu.Unlock()
	if len(late) == 0 {
		return fmt.Errorf("due: no reminder arrived")
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	pct := func(p float64) time.Duration { return late[int(p*float64(len(late)-1))] }
	fmt.Fprintf(out, "due: %d of %d reminders due within %s arrived; lateness p50 %s, p99 %s, max %s (worker concurrency %d, delayed-task check every %s)\n",
		len(late), n, window, pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), late[len(late)-1].Round(time.Millisecond), b.concurrency, b.checkInterval)
	return nil
}

func toInputs(items []item) []workflows.CreateInput {
	ins := make([]workflows.CreateInput, len(items))
	for i, it := range items {
		ins[i] = workflows.CreateInput{ID: it.ID, ScheduledAt: it.ScheduledAt, Timezone: it.Timezone,
			Provider: workflows.PersonInput{Identity: "dr-lee", Name: "Dr. Lee", Phone: "+15551230001"},
			Patient:  workflows.PersonInput{Identity: it.Patient["identity"].(string), Name: "Sam", Phone: it.Patient["phone"].(string)}}
	}
	return ins
}

// Package testenv is visitflow's one test stack, in the spirit of
// net/http/httptest and asynq's internal/testutil: New wires, for one test,
//
//   - Redis: a database leased from redistest.ForTest (or a URL given with
//     RedisURL, e.g. a redistest.StartServer a fault test stops), and a
//     redis.namespace of the test's own (redistest.Namespace), so tests
//     sharing one Redis Cluster never see each other's keys or jobs;
//   - config: config.Default plus the test credentials below (AccountSID,
//     AuthToken, APIKey/APISecret, APIToken), public_base_url set to the test
//     server, quiet hours off; Configure adjusts it further;
//   - the store, an Asynq client and inspector, and the engine
//     (workflows.New; Engine adjusts its Deps);
//   - the real HTTP edge, handlers.NewServer, on an httptest server (Server
//     adjusts its Deps, e.g. to mount the visit board);
//   - optionally (WithSandbox) the sandbox emulator playing Twilio on a second
//     httptest server: the engine's twilioapi client points at it and it calls
//     back the app (status callbacks, incoming calls and SMS), signed;
//   - optionally (WithWorkers, or StartWorkers later) a real Asynq worker
//     server running the engine's handlers.
//
// Everything stops when the test ends. It is imported by tests only (the
// production binaries never link package testing). Use it as
//
//	e := testenv.New(t, testenv.WithSandbox(nil), testenv.WithWorkers())
//	v := e.CreateVisit(testenv.VisitBody("V-1"))
//	e.Sandbox.Join(t, v.Room.Name, "pat-8812")
//	e.WaitVisit("V-1", "the patient waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
//
// The helpers fail the test on any unexpected error: signed Twilio form posts
// (PostSigned), JSON API calls with the bearer token (API, APIRaw), visit
// reads (Visit, Timeline), waiting with a deadline (Eventually, WaitVisit,
// WaitTimeline; Sandbox.WaitEvent awaits an emulator event instead of
// polling), running one task through the real workers (RunTask) or straight
// through the engine's handler (Process), and the emulator's inspection API
// through sandbox.Client (SMS, CallsTo).
package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// The credentials every Env is configured with (and its emulator accepts).
const (
	AccountSID = sandbox.DefaultAccountSID
	AuthToken  = "0123456789abcdef0123456789abcdef"
	APIKey     = "SK0123456789abcdef0123456789abcdef"
	APISecret  = "legsecret0123456789abcdef"
	APIToken   = "test-api-token"
)

// WaitLimit bounds every wait of the helpers.
const WaitLimit = 30 * time.Second

// Env is one running visitflow for one test. Its fields are the wired parts;
// tests may use them directly (a second engine on the same Redis, the
// inspector, the raw Redis client).
type Env struct {
	T         testing.TB
	URL       string // the app's base URL (also its public_base_url unless Configure changed it)
	Config    config.Config
	Conn      *redisx.Conn
	Store     *store.Store
	Queue     *asynq.Client
	Inspector *asynq.Inspector
	Engine    *workflows.Engine
	Metrics   *metrics.Metrics // what the server exports at /metrics; workers count into it too
	Twilio    *twilioapi.Client
	Sandbox   *Sandbox // nil without WithSandbox
	// Server is the app's httptest server (a fault test may close it).
	Server *httptest.Server
}

type options struct {
	redisURL  string
	configure []func(*config.Config)
	engine    []func(*workflows.Deps)
	server    []func(*Env, *handlers.Deps)
	sandbox   bool
	emuOpts   []func(*sandbox.Options)
	emuWrap   func(http.Handler) http.Handler
	workers   bool
	clock     clock.Clock
}

// Option adjusts what New wires.
type Option func(*options)

// RedisURL uses the Redis at url instead of a database from redistest.ForTest.
func RedisURL(url string) Option { return func(o *options) { o.redisURL = url } }

// Configure adjusts the config after the test values are set (the app and
// emulator URLs included, so it may override them).
func Configure(f func(*config.Config)) Option {
	return func(o *options) { o.configure = append(o.configure, f) }
}

// Engine adjusts the engine's Deps (another Queue, a Clock…).
func Engine(f func(*workflows.Deps)) Option {
	return func(o *options) { o.engine = append(o.engine, f) }
}

// WithClock gives the engine and the store clk (the store stamps updated_at).
func WithClock(clk clock.Clock) Option { return func(o *options) { o.clock = clk } }

// Server adjusts the HTTP edge's Deps once the engine exists.
func Server(f func(*Env, *handlers.Deps)) Option {
	return func(o *options) { o.server = append(o.server, f) }
}

// WithSandbox serves the emulator as Twilio: REST calls go to it and it
// calls the app back. tweak (may be nil) adjusts its options.
func WithSandbox(tweak func(*sandbox.Options)) Option {
	return func(o *options) {
		o.sandbox = true
		if tweak != nil {
			o.emuOpts = append(o.emuOpts, tweak)
		}
	}
}

// WrapSandbox puts wrap in front of the emulator's handler (to count or
// fail REST requests). It implies WithSandbox.
func WrapSandbox(wrap func(http.Handler) http.Handler) Option {
	return func(o *options) { o.sandbox, o.emuWrap = true, wrap }
}

// WithWorkers starts a real Asynq worker server for the engine (StartWorkers).
func WithWorkers() Option { return func(o *options) { o.workers = true } }

// New wires a visitflow for t; see the package comment.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.redisURL == "" {
		o.redisURL = redistest.ForTest(t)
	}
	conn, err := redisx.Connect(context.Background(), o.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	e := &Env{T: t, Conn: conn, Queue: asynq.NewClientFromRedisClient(conn.Client),
		Inspector: asynq.NewInspectorFromRedisClient(conn.Client), Metrics: metrics.New()}
	e.Server = httptest.NewServer(nil)
	t.Cleanup(e.Server.Close)
	e.URL = e.Server.URL

	cfg := config.Default()
	cfg.Twilio.AccountSID, cfg.Twilio.AuthToken = AccountSID, AuthToken
	cfg.Twilio.APIKey, cfg.Twilio.APISecret = APIKey, APISecret
	cfg.API.Token = APIToken
	cfg.HTTP.PublicBaseURL = e.URL // Twilio signs the public URL: here the test server's
	cfg.Visits.QuietHours = config.QuietHours{}
	cfg.Redis.Namespace = redistest.Namespace(t)
	var emuSrv *httptest.Server
	if o.sandbox {
		emuSrv = httptest.NewServer(nil)
		t.Cleanup(emuSrv.Close)
		cfg.Twilio.APIURL = emuSrv.URL
	}
	for _, f := range o.configure {
		f(&cfg)
	}
	e.Config = cfg
	storeOpts := []store.Option{store.WithNamespace(cfg.Redis.Namespace)}
	if o.clock != nil {
		storeOpts = append(storeOpts, store.WithClock(o.clock))
	}
	e.Store = store.New(conn.Client, storeOpts...)

	deps := workflows.Deps{Store: e.Store, Queue: e.Queue, Deleter: e.Inspector, Config: cfg, Metrics: e.Metrics, Clock: o.clock}
	if o.sandbox {
		e.Sandbox = serveSandbox(t, emuSrv, cfg, o)
		e.Twilio = e.NewTwilio(cfg.Twilio.APIURL)
		deps.Twilio = e.Twilio
	}
	for _, f := range o.engine {
		f(&deps)
	}
	e.Engine = workflows.New(deps)
	t.Cleanup(e.Engine.AwaitAcks)

	hd := handlers.Deps{Engine: e.Engine, Config: cfg, Metrics: e.Metrics}
	for _, f := range o.server {
		f(e, &hd)
	}
	e.Server.Config.Handler = handlers.NewServer(hd)
	if o.workers {
		e.StartWorkers(e.Engine)
	}
	return e
}

func serveSandbox(t testing.TB, srv *httptest.Server, cfg config.Config, o options) *Sandbox {
	app := cfg.HTTP.PublicBaseURL
	so := sandbox.Options{
		AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
		APIKeySID: cfg.Twilio.APIKey, APIKeySecret: cfg.Twilio.APISecret,
		// As a number's Voice URLs are configured (docs/deploy.md).
		IncomingVoiceURL:       app + "/twilio/voice/incoming" + workflows.VoiceOverrides,
		IncomingVoiceStatusURL: app + "/twilio/voice/status" + workflows.VoiceOverrides,
		IncomingSMSURL:         app + "/twilio/sms/incoming",
	}
	for _, f := range o.emuOpts {
		f(&so)
	}
	emu := sandbox.New(so)
	t.Cleanup(emu.Close)
	var h http.Handler = emu.Handler()
	if o.emuWrap != nil {
		h = o.emuWrap(h)
	}
	srv.Config.Handler = h
	return &Sandbox{Emulator: emu, URL: srv.URL, Client: sandbox.NewClient(srv.URL, srv.Client())}
}

// NewTwilio returns a twilioapi client with the env's credentials talking
// to apiURL (the emulator, a front that fails on purpose, a closed port).
func (e *Env) NewTwilio(apiURL string) *twilioapi.Client {
	e.T.Helper()
	c := e.Config.Twilio
	tw, err := twilioapi.New(twilioapi.Config{AccountSID: c.AccountSID, AuthToken: c.AuthToken, APIKey: c.APIKey,
		APISecret: c.APISecret, FromNumber: c.FromNumber, MessagingServiceSID: c.MessagingServiceSID,
		APIURL: apiURL, Timeout: c.RequestTimeout}, nil)
	if err != nil {
		e.T.Fatal(err)
	}
	return tw
}

// NewEngine is another visitflow process on the same Redis and config (its
// own Asynq client); adjust changes its Deps (a Twilio that fails, a Clock).
func (e *Env) NewEngine(adjust ...func(*workflows.Deps)) *workflows.Engine {
	d := workflows.Deps{Store: store.New(e.Conn.Client, store.WithNamespace(e.Config.Redis.Namespace)), Queue: asynq.NewClientFromRedisClient(e.Conn.Client),
		Deleter: asynq.NewInspectorFromRedisClient(e.Conn.Client), Config: e.Config, Metrics: e.Metrics}
	if e.Twilio != nil {
		d.Twilio = e.Twilio
	}
	for _, f := range adjust {
		f(&d)
	}
	return workflows.New(d)
}

// StartWorkers runs a real Asynq server for engine on the env's Redis until
// the test ends, as cmd/visitflow wires a worker (jobs counted in
// e.Metrics), polling fast and retrying after 50 ms.
func (e *Env) StartWorkers(engine *workflows.Engine) {
	e.T.Helper()
	srv := asynq.NewServerFromRedisClient(e.Conn.Client, asynq.Config{
		Concurrency: 8, Queues: workflows.Queues(e.Config.Redis.Namespace), LogLevel: asynq.FatalLevel,
		TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 50 * time.Millisecond },
		IsFailure:      workflows.CountsAsFailure,
	})
	mux := asynq.NewServeMux()
	mux.Use(e.Metrics.JobMiddleware)
	engine.Register(mux)
	if err := srv.Start(mux); err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(srv.Shutdown)
}

// RunTask enqueues a task under a fresh ID (as a retry or a duplicate
// delivery would arrive) and waits until the workers completed it; it fails
// the test when the task fails. The env needs workers.
func (e *Env) RunTask(typ string, p workflows.Payload) {
	e.T.Helper()
	b, _ := json.Marshal(p)
	id := fmt.Sprintf("test:%s:%d", typ, time.Now().UnixNano())
	queue := e.QueueName(workflows.QueueCritical)
	if _, err := e.Queue.Enqueue(asynq.NewTask(typ, b), asynq.TaskID(id), asynq.Queue(queue),
		asynq.Retention(time.Hour), asynq.MaxRetry(0)); err != nil {
		e.T.Fatal(err)
	}
	e.WaitTaskDone(queue, id)
}

// WaitTaskDone waits until the task id of queue (a full queue name, see
// QueueName) has completed; it fails the test when the task was archived.
// Tasks are enqueued with a retention, so a completed task stays visible.
func (e *Env) WaitTaskDone(queue, id string) {
	e.T.Helper()
	e.Eventually("task "+id+" completed", func() bool {
		info, err := e.Inspector.GetTaskInfo(queue, id)
		if err == nil && info.State == asynq.TaskStateArchived {
			e.T.Fatalf("task %s failed: %s", id, info.LastErr)
		}
		return err == nil && info.State == asynq.TaskStateCompleted
	})
}

// Process runs one task through engine's registered handler in this
// goroutine, as a worker would, and returns its error.
func Process(engine *workflows.Engine, typ string, p workflows.Payload) error {
	mux := asynq.NewServeMux()
	engine.Register(mux)
	b, _ := json.Marshal(p)
	return mux.ProcessTask(context.Background(), asynq.NewTask(typ, b))
}

// Eventually polls cond every 20 ms until it holds; after WaitLimit it
// fails t naming what. For conditions no event announces (a job's effect in
// Redis); await emulator events with Sandbox.WaitEvent.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Eventually is the package's Eventually for e.T.
func (e *Env) Eventually(what string, cond func() bool) {
	e.T.Helper()
	Eventually(e.T, what, cond)
}

// WaitVisit reads the visit through the API until ok holds; on time-out it
// fails showing the last read.
func (e *Env) WaitVisit(id, what string, ok func(handlers.VisitView) bool) handlers.VisitView {
	e.T.Helper()
	deadline := time.Now().Add(WaitLimit)
	for {
		v := e.Visit(id)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(v, "", "  ")
			e.T.Fatalf("visit %s never reached %s:\n%s", id, what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Timeline reads the visit's timeline through the engine.
func (e *Env) Timeline(id string) []visit.Entry {
	e.T.Helper()
	_, tl, err := e.Engine.Visit(context.Background(), id)
	if err != nil {
		e.T.Fatal(err)
	}
	return tl
}

// WaitTimeline polls the visit's timeline until ok holds: a job runs in
// another goroutine and its only observable effect may be an entry.
func (e *Env) WaitTimeline(id string, ok func([]visit.Entry) bool) []visit.Entry {
	e.T.Helper()
	var tl []visit.Entry
	deadline := time.Now().Add(WaitLimit)
	for tl = e.Timeline(id); !ok(tl); tl = e.Timeline(id) {
		if time.Now().After(deadline) {
			e.T.Fatalf("timeline of %s never satisfied the condition: %+v", id, tl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tl
}

// Entries returns the timeline entries of type typ.
func Entries(tl []visit.Entry, typ string) []visit.Entry {
	return filter(tl, func(en visit.Entry) bool { return en.Type == typ })
}

// TimelineHas reports whether v's timeline has an entry of type typ whose
// summary contains substr.
func TimelineHas(v handlers.VisitView, typ, substr string) bool {
	for _, en := range v.Timeline {
		if en.Type == typ && strings.Contains(en.Summary, substr) {
			return true
		}
	}
	return false
}

// CreateEngineVisit creates a visit through the engine (no HTTP).
func (e *Env) CreateEngineVisit(in workflows.CreateInput) *visit.Visit {
	e.T.Helper()
	v, _, err := e.Engine.CreateVisit(context.Background(), in)
	if err != nil {
		e.T.Fatal(err)
	}
	return v
}

// AllKeys lists the Redis keys matching pattern (every node of a Cluster).
func (e *Env) AllKeys(pattern string) []string {
	e.T.Helper()
	keys, err := redistest.AllKeys(context.Background(), e.Conn.Client, pattern)
	if err != nil {
		e.T.Fatal(err)
	}
	return keys
}

// QueueName is the Asynq queue of the logical queue (workflows.QueueDefault…)
// in the env's namespace.
func (e *Env) QueueName(queue string) string {
	return workflows.QueueName(e.Config.Redis.Namespace, queue)
}

// Key is the name under which the store keeps the vf:… key name in the env's
// namespace (the store's key map, internal/store, lists them unprefixed).
func (e *Env) Key(name string) string {
	if e.Config.Redis.Namespace == "" {
		return name
	}
	return e.Config.Redis.Namespace + ":" + name
}

// ScheduledIDs lists the IDs of the tasks waiting in the logical queue's
// scheduled set.
func (e *Env) ScheduledIDs(queue string) []string {
	e.T.Helper()
	tasks, err := e.Inspector.ListScheduledTasks(e.QueueName(queue), asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		e.T.Fatal(err)
	}
	var ids []string
	for _, t := range tasks {
		ids = append(ids, t.ID)
	}
	return ids
}

package workflows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

const (
	patientPhone  = "+15551230002"
	providerPhone = "+15551230001"
	testAPIToken  = "api-token"
)

// smsEnv is visitflow's engine and HTTP edge on real Redis, with Twilio
// played by the sandbox emulator over HTTP: SMS status callbacks and inbound
// SMS reach the app's real handlers, signed.
type smsEnv struct {
	t       *testing.T
	conn    *redisx.Conn
	store   *store.Store
	cfg     config.Config
	emu     *sandbox.Emulator
	emuURL  string
	appURL  string
	twilio  *twilioapi.Client
	engine  *workflows.Engine
	inspect *asynq.Inspector
}

type envOption func(*config.Config)

func newSMSEnv(t *testing.T, opts ...envOption) *smsEnv {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redistest.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	app := httptest.NewServer(nil)
	t.Cleanup(app.Close)
	emu := sandbox.New(sandbox.Options{IncomingSMSURL: app.URL + "/twilio/sms/incoming"})
	t.Cleanup(emu.Close)
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)

	cfg := config.Default()
	cfg.Twilio.AccountSID = sandbox.DefaultAccountSID
	cfg.Twilio.AuthToken = sandbox.DefaultAuthToken
	cfg.Twilio.APIURL = emuSrv.URL
	cfg.HTTP.PublicBaseURL = app.URL
	cfg.API.Token = testAPIToken
	cfg.Visits.QuietHours = config.QuietHours{}
	for _, o := range opts {
		o(&cfg)
	}
	tw, err := twilioapi.New(twilioapi.Config{AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
		FromNumber: cfg.Twilio.FromNumber, APIURL: cfg.Twilio.APIURL, Timeout: cfg.Twilio.RequestTimeout}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &smsEnv{t: t, conn: conn, store: store.New(conn.Client), cfg: cfg, emu: emu, emuURL: emuSrv.URL,
		appURL: app.URL, twilio: tw, inspect: asynq.NewInspectorFromRedisClient(conn.Client)}
	e.engine = e.newEngine(tw, nil)
	app.Config.Handler = handlers.NewServer(handlers.Deps{Engine: e.engine, Config: cfg})
	return e
}

// newEngine is another visitflow process on the same Redis (own Asynq client).
func (e *smsEnv) newEngine(tw workflows.Twilio, clk clock.Clock) *workflows.Engine {
	return workflows.New(workflows.Deps{Store: store.New(e.conn.Client), Queue: asynq.NewClientFromRedisClient(e.conn.Client),
		Deleter: asynq.NewInspectorFromRedisClient(e.conn.Client), Twilio: tw, Config: e.cfg, Clock: clk})
}

// startWorkers runs a real Asynq server for engine on the env's Redis.
func (e *smsEnv) startWorkers(engine *workflows.Engine) {
	srv := asynq.NewServerFromRedisClient(e.conn.Client, asynq.Config{Concurrency: 8, Queues: workflows.Queues,
		LogLevel: asynq.FatalLevel, DelayedTaskCheckInterval: 50 * time.Millisecond,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 50 * time.Millisecond }})
	mux := asynq.NewServeMux()
	engine.Register(mux)
	if err := srv.Start(mux); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(srv.Shutdown)
}

// run processes one task through engine's registered handler, as a worker would.
func run(engine *workflows.Engine, typ string, p workflows.Payload) error {
	mux := asynq.NewServeMux()
	engine.Register(mux)
	b, _ := json.Marshal(p)
	return mux.ProcessTask(context.Background(), asynq.NewTask(typ, b))
}

func visitInput(id string, at time.Time, tz string) workflows.CreateInput {
	return workflows.CreateInput{ID: id, ScheduledAt: at.UTC().Format(time.RFC3339), Timezone: tz,
		Provider: workflows.PersonInput{Identity: "dr-lee", Name: "Dr. Lee", Phone: providerPhone},
		Patient:  workflows.PersonInput{Identity: "pat-1", Name: "Sam", Phone: patientPhone}}
}

func (e *smsEnv) create(in workflows.CreateInput) *visit.Visit {
	e.t.Helper()
	v, _, err := e.engine.CreateVisit(context.Background(), in)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

type sentSMS struct {
	SID    string `json:"sid"`
	To     string `json:"to"`
	Body   string `json:"body"`
	Status string `json:"status"`
}

// messages lists the outbound SMS the emulator accepted (its inspection API).
func (e *smsEnv) messages() []sentSMS {
	e.t.Helper()
	resp, err := http.Get(e.emuURL + "/messages")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Messages []struct {
			sentSMS
			Direction string `json:"direction"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatal(err)
	}
	var list []sentSMS
	for _, m := range out.Messages {
		if strings.HasPrefix(m.Direction, "outbound") && m.Direction != "outbound-reply" {
			list = append(list, m.sentSMS)
		}
	}
	return list
}

func (e *smsEnv) messagesTo(phone string) []sentSMS {
	var out []sentSMS
	for _, m := range e.messages() {
		if m.To == phone {
			out = append(out, m)
		}
	}
	return out
}

// waitUntil polls cond until it holds or 15 s pass.
func (e *smsEnv) waitUntil(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *smsEnv) timeline(id string) []visit.Entry {
	e.t.Helper()
	_, tl, err := e.engine.Visit(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return tl
}

func entries(tl []visit.Entry, typ string) []visit.Entry {
	var out []visit.Entry
	for _, en := range tl {
		if en.Type == typ {
			out = append(out, en)
		}
	}
	return out
}

// scheduledIDs lists the task IDs waiting in the default queue.
func (e *smsEnv) scheduledIDs() []string {
	e.t.Helper()
	tasks, err := e.inspect.ListScheduledTasks(workflows.QueueDefault, asynq.PageSize(1000))
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		e.t.Fatal(err)
	}
	var ids []string
	for _, t := range tasks {
		ids = append(ids, t.ID)
	}
	return ids
}

// api calls the scheduling API of the app.
func (e *smsEnv) api(method, path, body string) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.appURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAPIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

// crashAfterSend is the Twilio boundary of a worker that dies right after
// Twilio accepted a message: the real request is made, then the job sees an
// error as if the process had stopped before recording the answer.
type crashAfterSend struct {
	workflows.Twilio
	mu      sync.Mutex
	crashes int
}

func (c *crashAfterSend) SendSMS(ctx context.Context, p twilioapi.SendSMSParams) (twilioapi.Message, error) {
	m, err := c.Twilio.SendSMS(ctx, p)
	if err != nil {
		return m, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashes > 0 {
		c.crashes--
		return twilioapi.Message{}, errors.New("worker lost: process stopped after Twilio answered")
	}
	return m, nil
}

package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/workflows"
)

const (
	apiKey    = "SK0123456789abcdef0123456789abcdef"
	apiSecret = "legsecret0123456789abcdef"
	// interpreterPhone answers like a human in the sandbox.
	interpreterPhone = "+15551239999"
	waitLimit        = 20 * time.Second
)

// legEnv is visitflow end to end on real Redis: our HTTP server, a real
// Asynq server running the jobs, and the sandbox emulator playing Twilio on
// a second HTTP server (REST API, signed callbacks, TwiML followed).
type legEnv struct {
	*env
	emu    *sandbox.Emulator
	emuURL string
}

func newLegEnv(t *testing.T, clk clock.Clock) *legEnv {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redisx.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	app := httptest.NewServer(nil)
	t.Cleanup(app.Close)
	emuSrv := httptest.NewServer(nil)
	t.Cleanup(emuSrv.Close)

	cfg := config.Default()
	cfg.Twilio.AccountSID = "AC00000000000000000000000000000000"
	cfg.Twilio.AuthToken = authToken
	cfg.Twilio.APIKey, cfg.Twilio.APISecret = apiKey, apiSecret
	cfg.Twilio.APIURL = emuSrv.URL
	cfg.API.Token = apiToken
	cfg.HTTP.PublicBaseURL = app.URL
	// Sandbox minutes are short; keep rooms open for the whole test.
	cfg.Visits.EmptyRoomTimeout, cfg.Visits.UnusedRoomTimeout = time.Hour, time.Hour
	cfg.Interpreter.RetryBackoff = 100 * time.Millisecond
	cfg.Interpreter.RingTimeout = 5 * time.Second
	cfg.Interpreter.MaxAttempts = 3
	cfg.Interpreter.Lines = map[string]config.InterpreterLine{
		"voyce-es":  {Phone: interpreterPhone, IVR: "ww2ww1234#"},
		"busy-once": {Phone: sandbox.NumberBusyOnce, IVR: "1#"},
		"busy":      {Phone: sandbox.NumberBusy},
		"no-answer": {Phone: sandbox.NumberNoAnswer},
		"failed":    {Phone: sandbox.NumberFailed},
		"machine":   {Phone: sandbox.NumberMachine, IVR: "9#"},
	}

	emu := sandbox.New(sandbox.Options{
		AccountSID: cfg.Twilio.AccountSID, AuthToken: authToken,
		IncomingVoiceURL:       app.URL + "/twilio/voice/incoming",
		IncomingVoiceStatusURL: app.URL + "/twilio/voice/status",
		MinuteLength:           1200 * time.Millisecond, // a Twilio second is 20 ms
	})
	t.Cleanup(emu.Close)
	emuSrv.Config.Handler = emu.Handler()

	tw, err := twilioapi.New(twilioapi.Config{
		AccountSID: cfg.Twilio.AccountSID, AuthToken: authToken, APIKey: apiKey, APISecret: apiSecret,
		FromNumber: cfg.Twilio.FromNumber, APIURL: emuSrv.URL,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := workflows.New(workflows.Deps{
		Store: store.New(conn.Client), Queue: asynq.NewClientFromRedisClient(conn.Client),
		Deleter: asynq.NewInspectorFromRedisClient(conn.Client), Twilio: tw, Clock: clk, Config: cfg,
	})
	app.Config.Handler = handlers.NewServer(handlers.Deps{Engine: engine, Config: cfg})

	workers := asynq.NewServerFromRedisClient(conn.Client, asynq.Config{
		Concurrency: 8, Queues: workflows.Queues, LogLevel: asynq.ErrorLevel,
		TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond,
	})
	mux := asynq.NewServeMux()
	engine.Register(mux)
	if err := workers.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(workers.Shutdown)

	return &legEnv{env: &env{t: t, url: app.URL, cfg: cfg, engine: engine, conn: conn}, emu: emu, emuURL: emuSrv.URL}
}

// legVisit is the visit resource with the interpreter leg.
type legVisit struct {
	visitJSON
	Interpreter *struct {
		Line        string `json:"line"`
		State       string `json:"state"`
		CallSID     string `json:"call_sid"`
		Attempts    int    `json:"attempts"`
		LastOutcome string `json:"last_outcome"`
	} `json:"interpreter"`
}

// createAt creates visit id scheduled at at (America/New_York).
func (e *legEnv) createAt(id string, at time.Time) visitJSON {
	e.t.Helper()
	body := visitBody(id)
	body["scheduled_at"] = at.UTC().Format(time.RFC3339)
	var v visitJSON
	if code := e.api(http.MethodPost, "/v1/visits", body, &v); code != http.StatusCreated {
		e.t.Fatalf("POST /v1/visits = %d; want 201", code)
	}
	return v
}

func (e *legEnv) legVisit(id string) legVisit {
	e.t.Helper()
	var v legVisit
	if code := e.api(http.MethodGet, "/v1/visits/"+id, nil, &v); code != http.StatusOK {
		e.t.Fatalf("GET /v1/visits/%s = %d; want 200", id, code)
	}
	return v
}

// eventually polls the visit until ok holds.
func (e *legEnv) eventually(id, what string, ok func(legVisit) bool) legVisit {
	e.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		v := e.legVisit(id)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(v, "", "  ")
			e.t.Fatalf("visit %s never reached %s:\n%s", id, what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvent awaits an emulator event.
func (e *legEnv) waitEvent(what string, match func(sandbox.Event) bool) sandbox.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ev, err := e.emu.WaitFor(ctx, match)
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
	return ev
}

// control calls the emulator's control/inspection API.
func (e *legEnv) control(method, path string, body any, out any) int {
	e.t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, e.emuURL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			e.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

type emuCall struct {
	SID       string     `json:"sid"`
	Direction string     `json:"direction"`
	To        string     `json:"to"`
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at"`
}

func (e *legEnv) callsTo(number string) []emuCall {
	var out struct{ Calls []emuCall }
	e.control(http.MethodGet, "/calls", nil, &out)
	var calls []emuCall
	for _, c := range out.Calls {
		if c.To == number && c.Direction == "outbound-api" {
			calls = append(calls, c)
		}
	}
	return calls
}

type emuMessage struct {
	To   string `json:"to"`
	Body string `json:"body"`
}

func (e *legEnv) messagesTo(number string) []emuMessage {
	var out struct{ Messages []emuMessage }
	e.control(http.MethodGet, "/messages", nil, &out)
	var msgs []emuMessage
	for _, m := range out.Messages {
		if m.To == number {
			msgs = append(msgs, m)
		}
	}
	return msgs
}

func participantConnected(identity string) func(sandbox.Event) bool {
	return func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "participant-connected" &&
			ev.Params.Get("ParticipantIdentity") == identity
	}
}

func timelineHas(v legVisit, typ, substr string) bool {
	for _, en := range v.Timeline {
		if en.Type == typ && strings.Contains(en.Summary, substr) {
			return true
		}
	}
	return false
}

// TestInterpreterBusyOnceThenBridgedAndHungUpOnEnd: the first attempt is
// busy, the retry is answered, the IVR path is played, the call is bridged
// into the room as interpreter-<id>; a second request meanwhile is 409;
// ending the visit hangs the call up and ends the room.
func TestInterpreterBusyOnceThenBridgedAndHungUpOnEnd(t *testing.T) {
	e := newLegEnv(t, nil)
	e.createAt("V-int", time.Now().Add(10*time.Minute))

	var v legVisit
	if code := e.api(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "busy-once"}, &v); code != http.StatusAccepted {
		t.Fatalf("POST interpreter = %d; want 202", code)
	}
	if v.Interpreter == nil || v.Interpreter.State != "requested" {
		t.Fatalf("interpreter after request = %+v; want requested", v.Interpreter)
	}
	var errBody errorJSON
	if code := e.api(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "busy-once"}, &errBody); code != http.StatusConflict {
		t.Fatalf("second POST interpreter while live = %d; want 409", code)
	}
	if code := e.api(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "nope"}, &errBody); code != http.StatusBadRequest && code != http.StatusConflict {
		t.Fatalf("POST interpreter with an unknown line = %d; want 400", code)
	}

	e.waitEvent("the interpreter joining the room", participantConnected("interpreter-V-int"))
	v = e.eventually("V-int", "interpreter bridged", func(v legVisit) bool {
		return v.Interpreter != nil && v.Interpreter.State == "bridged"
	})
	if v.Interpreter.Attempts != 2 || !timelineHas(v, "interpreter-retry", "busy") {
		t.Fatalf("interpreter = %+v, timeline %+v; want bridged on attempt 2 after a busy attempt", v.Interpreter, v.Timeline)
	}
	calls := e.callsTo(sandbox.NumberBusyOnce)
	if len(calls) != 2 || calls[0].Status != "busy" || calls[1].Status != "in-progress" {
		t.Fatalf("calls to the line = %+v; want busy then in-progress", calls)
	}
	if calls[0].EndedAt == nil || calls[1].CreatedAt.Before(*calls[0].EndedAt) {
		t.Fatalf("second call placed at %v before the first ended (%v): two simultaneous calls", calls[1].CreatedAt, calls[0].EndedAt)
	}
	if v.Interpreter.CallSID != calls[1].SID {
		t.Fatalf("leg call_sid = %s; want the answered call %s", v.Interpreter.CallSID, calls[1].SID)
	}
	play := e.waitEvent("the IVR digits", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Play" && ev.SID == calls[1].SID
	})
	if got := play.Params.Get("digits"); got != "1#" {
		t.Fatalf("<Play digits> = %q; want the line's IVR path 1#", got)
	}
	for _, ev := range e.emu.Events() {
		if ev.Kind == sandbox.KindVoiceStatus && ev.SID == calls[1].SID && ev.Name == "in-progress" && ev.Params.Get("AnsweredBy") != "human" {
			t.Fatalf("answered callback AnsweredBy = %q; want human (machine detection on)", ev.Params.Get("AnsweredBy"))
		}
	}

	if code := e.api(http.MethodPost, "/v1/visits/V-int/end", nil, &v); code != http.StatusOK {
		t.Fatalf("POST end = %d; want 200", code)
	}
	e.waitEvent("the interpreter call hung up", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceStatus && ev.SID == calls[1].SID && ev.Name == "completed"
	})
	e.waitEvent("the room ended", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "room-ended" && ev.Params.Get("RoomName") == "visit-V-int"
	})
	v = e.eventually("V-int", "leg ended", func(v legVisit) bool { return v.Interpreter.State == "ended" })
	if v.State != "no_show" {
		t.Fatalf("state after /end with only the interpreter = %s; want no_show", v.State)
	}
	if code := e.api(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "voyce-es"}, &errBody); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST interpreter on an ended visit = %d; want 422", code)
	}
}

// TestInterpreterRetriesExhausted: a line that never answers is dialled
// max_attempts times, then the leg fails and the provider gets an SMS.
func TestInterpreterRetriesExhausted(t *testing.T) {
	e := newLegEnv(t, nil)
	cases := []struct{ line, number, outcome string }{
		{"busy", sandbox.NumberBusy, "busy"},
		{"no-answer", sandbox.NumberNoAnswer, "no-answer"},
		{"failed", sandbox.NumberFailed, "failed"},
		{"machine", sandbox.NumberMachine, "machine"},
	}
	for i, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			e.t = t
			id := fmt.Sprintf("V-x%d", i)
			e.createAt(id, time.Now().Add(10*time.Minute))
			if code := e.api(http.MethodPost, "/v1/visits/"+id+"/interpreter", map[string]string{"line": c.line}, nil); code != http.StatusAccepted {
				t.Fatalf("POST interpreter = %d; want 202", code)
			}
			v := e.eventually(id, "leg failed and provider told", func(v legVisit) bool {
				return v.Interpreter.State == "failed" && timelineHas(v, "interpreter-failed-sms", "provider told")
			})
			if v.Interpreter.Attempts != 3 || v.Interpreter.LastOutcome != c.outcome {
				t.Fatalf("interpreter = %+v; want 3 attempts, last %s", v.Interpreter, c.outcome)
			}
			if calls := e.callsTo(c.number); len(calls) != 3 {
				t.Fatalf("%d calls placed; want 3", len(calls))
			}
			if c.line == "machine" {
				for _, ev := range e.emu.Events() {
					if ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Play" && ev.Params.Get("digits") == "9#" {
						t.Fatal("the IVR path was played to an answering machine")
					}
				}
			}
		})
	}
	msgs := e.messagesTo("+15551230001")
	if len(msgs) != len(cases) {
		t.Fatalf("provider got %d SMS; want one per failed request (%d): %+v", len(msgs), len(cases), msgs)
	}
	for _, m := range msgs {
		if !strings.Contains(m.Body, "could not be reached after 3 attempts") {
			t.Fatalf("provider SMS %q; want the interpreter_failed text", m.Body)
		}
	}
}

var _ jwt.MapClaims

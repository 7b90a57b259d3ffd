package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/twiliosig"
	"github.com/visitflow/visitflow/internal/visit"
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
	conn, err := redisx.Connect(context.Background(), redistest.ForTest(t))
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

// runTask enqueues a task under a fresh ID (as a retry or duplicate
// delivery would arrive) and waits until the workers have processed it.
func (e *legEnv) runTask(typ string, p workflows.Payload) {
	e.t.Helper()
	b, _ := json.Marshal(p)
	id := fmt.Sprintf("test:%s:%d", typ, time.Now().UnixNano())
	client := asynq.NewClientFromRedisClient(e.conn.Client)
	if _, err := client.Enqueue(asynq.NewTask(typ, b), asynq.TaskID(id), asynq.Queue(workflows.QueueCritical),
		asynq.Retention(time.Hour), asynq.MaxRetry(0)); err != nil {
		e.t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(e.conn.Client)
	deadline := time.Now().Add(waitLimit)
	for {
		info, err := insp.GetTaskInfo(workflows.QueueCritical, id)
		if err == nil && info.State == asynq.TaskStateCompleted {
			return
		}
		if err == nil && info.State == asynq.TaskStateArchived {
			e.t.Fatalf("task %s failed: %s", typ, info.LastErr)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s not processed: %v %v", typ, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	return e.createFrom(body)
}

func (e *legEnv) legVisit(id string) legVisit {
	e.t.Helper()
	var v legVisit
	e.getInto(id, &v)
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
	// A dial job delivered again (an Asynq retry, a duplicate) places no call.
	for attempt := 1; attempt <= 2; attempt++ {
		e.runTask(workflows.TypeInterpreterDial, workflows.Payload{VisitID: "V-int", Request: 1, Attempt: attempt})
	}
	if n := len(e.callsTo(sandbox.NumberBusyOnce)); n != 2 {
		t.Fatalf("%d calls after re-running the dial jobs; want still 2", n)
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
	e.t = t
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

// TestInterpreterHangUpOnDeleteAndCancel: DELETE hangs up a bridged leg; a
// new request then dials again; cancelling the visit hangs that one up.
func TestInterpreterHangUpOnDeleteAndCancel(t *testing.T) {
	e := newLegEnv(t, nil)
	e.createAt("V-del", time.Now().Add(10*time.Minute))

	bridged := func(n int) string {
		t.Helper()
		if code := e.api(http.MethodPost, "/v1/visits/V-del/interpreter", map[string]string{"line": "voyce-es"}, nil); code != http.StatusAccepted {
			t.Fatalf("POST interpreter #%d = %d; want 202", n, code)
		}
		v := e.eventually("V-del", "bridged", func(v legVisit) bool {
			return v.Interpreter.State == "bridged" && len(e.callsTo(interpreterPhone)) == n
		})
		return v.Interpreter.CallSID
	}
	hungUp := func(sid string) {
		t.Helper()
		e.waitEvent("call "+sid+" completed", func(ev sandbox.Event) bool {
			return ev.Kind == sandbox.KindVoiceStatus && ev.SID == sid && ev.Name == "completed"
		})
		v := e.eventually("V-del", "leg ended", func(v legVisit) bool { return v.Interpreter.State == "ended" })
		if v.Interpreter.CallSID != sid {
			t.Fatalf("leg call_sid = %s; want %s", v.Interpreter.CallSID, sid)
		}
	}

	first := bridged(1)
	play := e.waitEvent("the IVR digits", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Play" && ev.SID == first
	})
	if got := play.Params.Get("digits"); got != "ww2ww1234#" {
		t.Fatalf("<Play digits> = %q; want ww2ww1234#", got)
	}
	room := e.waitEvent("the bridge", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Room" && ev.SID == first
	})
	if room.Params.Get("participantIdentity") != "interpreter-V-del" || room.Params.Get("text") != "visit-V-del" {
		t.Fatalf("<Room> = %v; want participantIdentity interpreter-V-del into visit-V-del", room.Params)
	}
	if v := e.legVisit("V-del"); v.State != "scheduled" {
		t.Fatalf("state with only the interpreter in the room = %s; want scheduled (interpreters never count)", v.State)
	}
	if code := e.api(http.MethodDelete, "/v1/visits/V-del/interpreter", nil, nil); code != http.StatusOK {
		t.Fatalf("DELETE interpreter = %d; want 200", code)
	}
	hungUp(first)

	second := bridged(2)
	if code := e.api(http.MethodPost, "/v1/visits/V-del/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("POST cancel = %d; want 200", code)
	}
	hungUp(second)
	e.waitEvent("the cancelled visit's room ended", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "room-ended" && ev.Params.Get("RoomName") == "visit-V-del"
	})
	if v := e.legVisit("V-del"); v.State != "cancelled" {
		t.Fatalf("state after cancel and room end = %s; want cancelled", v.State)
	}
}

// grant is the answer of the token and join routes.
type grant struct {
	Identity  string    `json:"identity"`
	Room      string    `json:"room"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// decodeToken verifies the JWT with the API secret and returns its claims.
func decodeToken(t *testing.T, tok string) (identity, room string, exp time.Time, claims jwt.MapClaims) {
	t.Helper()
	claims = jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(apiSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}))
	if err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	grants, _ := claims["grants"].(map[string]any)
	identity, _ = grants["identity"].(string)
	video, _ := grants["video"].(map[string]any)
	room, _ = video["room"].(string)
	e, err := claims.GetExpirationTime()
	if err != nil || e == nil {
		t.Fatalf("token has no exp: %v", err)
	}
	return identity, room, e.Time, claims
}

type emuRoom struct {
	UniqueName string `json:"unique_name"`
	Status     string `json:"status"`
	SID        string `json:"sid"`
}

func TestTokensAreRoomScopedAndExpireWithTheVisit(t *testing.T) {
	e := newLegEnv(t, nil)
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	e.createAt("V-tok", at)
	for _, c := range []struct{ role, identity string }{{"patient", "pat-8812"}, {"provider", "dr-lee"}} {
		var g grant
		if code := e.api(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": c.role}, &g); code != http.StatusOK {
			t.Fatalf("POST tokens %s = %d; want 200", c.role, code)
		}
		identity, room, exp, claims := decodeToken(t, g.Token)
		if identity != c.identity || room != "visit-V-tok" || g.Identity != c.identity || g.Room != "visit-V-tok" {
			t.Fatalf("%s token: identity %q room %q (answer %+v); want %s in visit-V-tok", c.role, identity, room, g, c.identity)
		}
		if want := at.Add(2 * time.Hour); !exp.Equal(want) || !g.ExpiresAt.Equal(want) {
			t.Fatalf("%s token exp = %v (expires_at %v); want scheduled_at + access_window = %v", c.role, exp, g.ExpiresAt, want)
		}
		if claims["iss"] != apiKey || claims["sub"] != e.cfg.Twilio.AccountSID {
			t.Fatalf("token iss/sub = %v/%v; want %s/%s", claims["iss"], claims["sub"], apiKey, e.cfg.Twilio.AccountSID)
		}
	}
	// The room exists before the token is returned, and the visit knows it.
	var rooms struct{ Rooms []emuRoom }
	e.control(http.MethodGet, "/rooms", nil, &rooms)
	if len(rooms.Rooms) != 1 || rooms.Rooms[0].UniqueName != "visit-V-tok" || rooms.Rooms[0].Status != "in-progress" {
		t.Fatalf("sandbox rooms = %+v; want visit-V-tok in progress (created once)", rooms.Rooms)
	}
	if v := e.legVisit("V-tok"); v.Room.SID != rooms.Rooms[0].SID {
		t.Fatalf("visit room sid = %q; want %s", v.Room.SID, rooms.Rooms[0].SID)
	}

	var errBody errorJSON
	if code := e.api(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": "guest"}, &errBody); code != http.StatusBadRequest || errBody.Error.Field != "role" {
		t.Fatalf("POST tokens role=guest = %d %+v; want 400 naming role", code, errBody)
	}
	if code := e.api(http.MethodPost, "/v1/visits/V-nope/tokens", map[string]string{"role": "patient"}, nil); code != http.StatusNotFound {
		t.Fatalf("POST tokens for an unknown visit = %d; want 404", code)
	}
	e.api(http.MethodPost, "/v1/visits/V-tok/cancel", nil, nil)
	if code := e.api(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": "patient"}, &errBody); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST tokens for a cancelled visit = %d; want 422", code)
	}
}

var joinLink = regexp.MustCompile(`/join/([A-Za-z0-9_-]+)`)

// join exchanges an invite secret without the bearer token.
func (e *legEnv) join(secret string) (int, grant) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/join/"+secret, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var g grant
	_ = json.NewDecoder(resp.Body).Decode(&g)
	return resp.StatusCode, g
}

// invite creates an invite and returns its secret, read from the SMS.
func (e *legEnv) invite(id, phone string) (inviteView, string) {
	e.t.Helper()
	var inv inviteView
	if code := e.api(http.MethodPost, "/v1/visits/"+id+"/invites",
		map[string]string{"phone": phone, "name": "Alex", "role": "guest"}, &inv); code != http.StatusCreated {
		e.t.Fatalf("POST invites = %d; want 201", code)
	}
	msgs := e.messagesTo(phone)
	if len(msgs) != 1 {
		e.t.Fatalf("SMS to the guest = %+v; want one", msgs)
	}
	m := joinLink.FindStringSubmatch(msgs[0].Body)
	if m == nil {
		e.t.Fatalf("invite SMS %q has no join link", msgs[0].Body)
	}
	return inv, m[1]
}

type inviteView struct {
	ID        string    `json:"id"`
	Identity  string    `json:"identity"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

func TestInvitesExpireAndDieOnCancel(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC())
	e := newLegEnv(t, clk)
	at := clk.Now().Add(30 * time.Minute).Truncate(time.Second)
	e.createAt("V-inv", at)
	e.createAt("V-inv2", at)

	inv, secret := e.invite("V-inv", "+15557770001")
	if len(secret) < 22 { // 22 base64url characters = 132 bits
		t.Fatalf("invite secret %q is shorter than 128 bits", secret)
	}
	for i := 0; i < 2; i++ { // a replay inside the window works
		code, g := e.join(secret)
		if code != http.StatusOK {
			t.Fatalf("join #%d = %d; want 200", i+1, code)
		}
		identity, room, exp, _ := decodeToken(t, g.Token)
		if identity != inv.Identity || !strings.HasPrefix(identity, "guest-") || room != "visit-V-inv" || !exp.Equal(at.Add(2*time.Hour)) {
			t.Fatalf("guest token identity %q room %q exp %v; want %s in visit-V-inv until %v", identity, room, exp, inv.Identity, at.Add(2*time.Hour))
		}
	}
	// Only a hash of the secret is stored anywhere in Redis.
	keys, err := redistest.AllKeys(context.Background(), e.conn.Client, "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if s, err := e.conn.Client.Get(context.Background(), k).Result(); err == nil && strings.Contains(s, secret) {
			t.Fatalf("Redis key %s holds the invite secret", k)
		}
		if strings.Contains(k, secret) {
			t.Fatalf("Redis key %s names the invite secret", k)
		}
	}
	// A guest in the room never counts as patient or provider.
	if code := e.control(http.MethodPost, "/rooms/visit-V-inv/participants", map[string]string{"identity": inv.Identity, "kind": "browser"}, nil); code >= 300 {
		t.Fatalf("guest joining the sandbox room = %d", code)
	}
	e.waitEvent("the guest connected", participantConnected(inv.Identity))
	v := e.eventually("V-inv", "the guest listed", func(v legVisit) bool { return len(v.Participants) == 1 })
	if v.State != "scheduled" || v.Participants[0].Role != "guest" {
		t.Fatalf("with only the guest: state %s, participants %+v; want scheduled and role guest", v.State, v.Participants)
	}

	if code, _ := e.join("not-an-invite-secret-at-all"); code != http.StatusNotFound {
		t.Fatalf("join with an unknown secret = %d; want 404", code)
	}
	var errBody errorJSON
	if code := e.api(http.MethodPost, "/v1/visits/V-inv/invites", map[string]string{"phone": "555"}, &errBody); code != http.StatusBadRequest || errBody.Error.Field != "phone" {
		t.Fatalf("invite with a bad phone = %d %+v; want 400 naming phone", code, errBody)
	}

	// Cancelling kills the invites of that visit.
	_, secret2 := e.invite("V-inv2", "+15557770002")
	if code, _ := e.join(secret2); code != http.StatusOK {
		t.Fatalf("join before cancel = %d; want 200", code)
	}
	e.api(http.MethodPost, "/v1/visits/V-inv2/cancel", nil, nil)
	if code, _ := e.join(secret2); code != http.StatusGone {
		t.Fatalf("join after cancel = %d; want 410", code)
	}

	// After the visit window the invite is gone.
	clk.Set(at.Add(2*time.Hour + time.Second))
	if code, _ := e.join(secret); code != http.StatusGone {
		t.Fatalf("join after the visit window = %d; want 410", code)
	}
}

// say awaits a <Say> on call sid containing text.
func (e *legEnv) waitSay(sid, text string) {
	e.t.Helper()
	e.waitEvent("<Say> "+text, func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Say" && ev.SID == sid && strings.Contains(ev.Params.Get("text"), text)
	})
}

// dial places an inbound call from number and presses digits.
func (e *legEnv) dial(from, digits string) string {
	e.t.Helper()
	var call struct {
		SID string `json:"sid"`
	}
	if code := e.control(http.MethodPost, "/calls/incoming", map[string]string{"from": from}, &call); code != http.StatusCreated {
		e.t.Fatalf("sandbox incoming call = %d", code)
	}
	if digits != "" {
		if code := e.control(http.MethodPost, "/calls/"+call.SID+"/digits", map[string]string{"digits": digits}, nil); code != http.StatusAccepted {
			e.t.Fatalf("sandbox digits = %d", code)
		}
	}
	return call.SID
}

func (e *legEnv) countEvents(sid, kind, name string) int {
	n := 0
	for _, ev := range e.emu.Events() {
		if ev.SID == sid && ev.Kind == kind && ev.Name == name {
			n++
		}
	}
	return n
}

func (e *legEnv) waitCallEnded(sid string) {
	e.t.Helper()
	e.waitEvent("call "+sid+" ended", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceStatus && ev.SID == sid && ev.Name == "completed"
	})
}

func TestDialIn(t *testing.T) {
	e := newLegEnv(t, nil)
	open := e.createAt("V-din", time.Now().Add(10*time.Minute))
	lateAt := time.Now().Add(3 * time.Hour).Truncate(time.Minute)
	late := e.createAt("V-late", lateAt)

	// The right PIN: the room is opened while the caller holds, then the
	// caller is bridged in as the patient's phone leg.
	sid := e.dial("+15557650001", open.DialIn.PIN+"#")
	e.waitEvent("the caller in the room", participantConnected("dialin-V-din"))
	e.waitSay(sid, "Please hold while we open your visit")
	v := e.eventually("V-din", "patient waiting", func(v legVisit) bool { return v.State == "waiting" })
	if len(v.Participants) != 1 || v.Participants[0].Role != "patient" || v.Participants[0].Identity != "dialin-V-din" {
		t.Fatalf("participants = %+v; want the dial-in leg as patient", v.Participants)
	}
	if !timelineHas(v, "dial-in", "PIN accepted") {
		t.Fatalf("timeline %+v lacks the dial-in entry", v.Timeline)
	}

	// Three wrong PINs: asked three times, then a polite goodbye.
	wrong := "000000"
	for wrong == open.DialIn.PIN || wrong == late.DialIn.PIN {
		wrong = fmt.Sprintf("%06d", time.Now().UnixNano()%1000000)
	}
	const caller = "+15557650002"
	for call := 1; call <= 2; call++ {
		sid := e.dial(caller, strings.Repeat(wrong, 3))
		e.waitSay(sid, "that PIN was not recognised. Please check the PIN")
		e.waitCallEnded(sid)
		if n := e.countEvents(sid, sandbox.KindVoiceTwiML, "gather"); n != 3 {
			t.Fatalf("call %d: %d PIN submissions; want 3 before the goodbye", call, n)
		}
		if n := e.countEvents(sid, sandbox.KindVoiceVerb, "Hangup"); n != 1 {
			t.Fatalf("call %d: %d <Hangup>; want 1", call, n)
		}
	}
	// Repeated failures from that caller: refused without a PIN prompt.
	sid = e.dial(caller, "")
	e.waitSay(sid, "could not verify your PIN")
	e.waitCallEnded(sid)
	if n := e.countEvents(sid, sandbox.KindVoiceVerb, "Gather"); n != 0 {
		t.Fatalf("rate-limited caller was asked for a PIN %d times; want 0", n)
	}
	// Another caller is still asked.
	sid = e.dial("+15557650004", "")
	e.waitEvent("PIN prompt", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Gather" && ev.SID == sid
	})
	keys, _ := redistest.AllKeys(context.Background(), e.conn.Client, "*")
	for _, k := range keys {
		if strings.Contains(k, "5557650002") {
			t.Fatalf("Redis key %s holds the caller's number", k)
		}
	}

	// A visit not open yet: its local time, then goodbye.
	sid = e.dial("+15557650003", late.DialIn.PIN+"#")
	ny, _ := time.LoadLocation("America/New_York")
	e.waitSay(sid, "Your visit is scheduled for "+lateAt.In(ny).Format("Monday, January 2 at 3:04 PM MST"))
	e.waitCallEnded(sid)
	if v := e.legVisit("V-late"); len(v.Participants) != 0 {
		t.Fatalf("V-late participants = %+v; want none", v.Participants)
	}
}

// TestLegRoutesAreGuarded: the TwiML endpoints refuse what Twilio did not
// sign, and every /v1 route but join needs the bearer token.
func TestLegRoutesAreGuarded(t *testing.T) {
	e := newLegEnv(t, nil)
	v := e.createAt("V-g", time.Now().Add(10*time.Minute))
	call := url.Values{"CallSid": {"CA00000000000000000000000000000009"}, "From": {"+15557650009"}}
	pin := url.Values{"CallSid": call["CallSid"], "From": call["From"], "Digits": {v.DialIn.PIN}}
	for _, path := range []string{"/twilio/voice/incoming", "/twilio/voice/pin?try=1",
		"/twilio/voice/bridge?visit=V-g&leg=interpreter", "/twilio/voice/dialin/connect?visit=V-g&hold=1"} {
		if resp := e.postForm(path, pin); resp.StatusCode != http.StatusForbidden {
			t.Errorf("unsigned POST %s = %d; want 403", path, resp.StatusCode)
		}
		forged := twiliosig.Sign("wrong-token", e.url+path, pin)
		if resp := e.postForm(path, pin, twiliosig.Header, forged); resp.StatusCode != http.StatusForbidden {
			t.Errorf("forged POST %s = %d; want 403", path, resp.StatusCode)
		}
	}
	// Signed for another PIN: Digits are part of what Twilio signs.
	other := url.Values{"CallSid": call["CallSid"], "From": call["From"], "Digits": {"999999"}}
	if resp := e.postForm("/twilio/voice/pin?try=1", pin, twiliosig.Header, twiliosig.Sign(authToken, e.url+"/twilio/voice/pin?try=1", other)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PIN with a signature for other digits = %d; want 403", resp.StatusCode)
	}
	if got := e.legVisit("V-g"); len(got.Participants) != 0 || timelineHas(got, "dial-in", "") {
		t.Fatalf("rejected requests changed the visit: %+v", got)
	}
	// A correctly signed PIN request is answered with TwiML.
	if resp := e.postSigned("/twilio/voice/pin?try=1", pin); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
		t.Fatalf("signed PIN = %d %s; want 200 TwiML", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/v1/visits/V-g/tokens"}, {http.MethodPost, "/v1/visits/V-g/invites"},
		{http.MethodPost, "/v1/visits/V-g/interpreter"}, {http.MethodDelete, "/v1/visits/V-g/interpreter"},
		{http.MethodPost, "/v1/visits/V-g/end"},
	} {
		req, _ := http.NewRequest(r.method, e.url+r.path, strings.NewReader(`{"role":"patient"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without bearer = %d; want 401", r.method, r.path, resp.StatusCode)
		}
	}
}

// TestInterpreterWatchdogRecoversALostClaim: a worker that claimed an
// attempt and died before placing the call leaves the leg "dialing" without
// a call; the check job fails that attempt and the next one is placed.
func TestInterpreterWatchdogRecoversALostClaim(t *testing.T) {
	e := newLegEnv(t, nil)
	e.createAt("V-w", time.Now().Add(10*time.Minute))
	st := store.New(e.conn.Client)
	// What the dying worker committed: the claim of attempt 1, no call.
	if _, err := st.Update(context.Background(), "V-w", "", func(v *visit.Visit) error {
		v.Interpreter = &visit.InterpreterLeg{Line: "voyce-es", State: visit.LegDialing, Attempts: 1, Request: 1, RequestedAt: time.Now()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Its dial job, re-delivered, must not place a call it cannot know about.
	e.runTask(workflows.TypeInterpreterDial, workflows.Payload{VisitID: "V-w", Request: 1, Attempt: 1})
	if n := len(e.callsTo(interpreterPhone)); n != 0 {
		t.Fatalf("a re-delivered claimed dial job placed %d calls; want 0", n)
	}
	e.runTask(workflows.TypeInterpreterCheck, workflows.Payload{VisitID: "V-w", Request: 1, Attempt: 1})
	v := e.eventually("V-w", "bridged on attempt 2", func(v legVisit) bool {
		return v.Interpreter.State == "bridged"
	})
	if v.Interpreter.Attempts != 2 || v.Interpreter.LastOutcome != "not placed" || len(e.callsTo(interpreterPhone)) != 1 {
		t.Fatalf("interpreter = %+v with %d calls; want one call, on attempt 2 after 'not placed'", v.Interpreter, len(e.callsTo(interpreterPhone)))
	}
}

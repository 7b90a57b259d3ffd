package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twiliosig"
	"github.com/visitflow/visitflow/workflows"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

const (
	authToken = "0123456789abcdef0123456789abcdef"
	apiToken  = "test-api-token"
)

// env is a running visitflow HTTP server on real Redis, without workers
// (tests that need jobs processed start them).
type env struct {
	t      testing.TB
	url    string
	cfg    config.Config
	engine *workflows.Engine
	conn   *redisx.Conn
	// metrics is what the server exports at /metrics; workers a test starts
	// can count into it too.
	metrics *metrics.Metrics
}

func newEnv(t testing.TB, redisURL string) *env {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cfg := config.Default()
	cfg.Twilio.AccountSID = "AC00000000000000000000000000000000"
	cfg.Twilio.AuthToken = authToken
	cfg.API.Token = apiToken
	cfg.Admin.Password = "admin-pass"
	cfg.HTTP.MaxBodyBytes = 4096

	queue := asynq.NewClientFromRedisClient(conn.Client)
	m := metrics.New()
	engine := workflows.New(workflows.Deps{
		Store: store.New(conn.Client), Queue: queue,
		Deleter: asynq.NewInspectorFromRedisClient(conn.Client), Config: cfg, Metrics: m,
	})
	e := &env{t: t, cfg: cfg, engine: engine, conn: conn, metrics: m}
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	e.url = srv.URL
	// Twilio signs the public URL we configured, here the test server's.
	e.cfg.HTTP.PublicBaseURL = srv.URL
	srv.Config.Handler = handlers.NewServer(handlers.Deps{Engine: engine, Config: e.cfg, Metrics: e.metrics})
	return e
}

// postSigned posts a form callback signed as Twilio signs it.
func (e *env) postSigned(path string, params url.Values, header ...string) *http.Response {
	e.t.Helper()
	sig := twiliosig.Sign(authToken, e.url+path, params)
	return e.postForm(path, params, append([]string{twiliosig.Header, sig}, header...)...)
}

func (e *env) postForm(path string, params url.Values, header ...string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(params.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// api calls the scheduling API and decodes the JSON answer into out.
func (e *env) api(method, path string, body any, out any) int {
	e.t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode
}

type visitJSON struct {
	ID           string `json:"id"`
	State        string `json:"state"`
	ScheduledAt  string `json:"scheduled_at"`
	Room         struct{ Name, SID string }
	DialIn       struct{ Number, PIN string } `json:"dial_in"`
	Participants []struct {
		Identity  string `json:"identity"`
		Role      string `json:"role"`
		SID       string `json:"sid"`
		Connected bool   `json:"connected"`
	} `json:"participants"`
	Timeline []timelineEntry `json:"timeline"`
}

type timelineEntry struct {
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Type    string    `json:"type"`
	Summary string    `json:"summary"`
	State   string    `json:"state"`
}

type errorJSON struct {
	Error struct{ Code, Message, Field string } `json:"error"`
}

func (e *env) createVisit(id string) visitJSON {
	e.t.Helper()
	return e.createFrom(visitBody(id))
}

// createFrom creates a visit from body and requires 201.
func (e *env) createFrom(body map[string]any) visitJSON {
	e.t.Helper()
	var v visitJSON
	if code := e.api(http.MethodPost, "/v1/visits", body, &v); code != http.StatusCreated {
		e.t.Fatalf("POST /v1/visits = %d; want 201", code)
	}
	return v
}

func (e *env) getVisit(id string) visitJSON {
	e.t.Helper()
	var v visitJSON
	e.getInto(id, &v)
	return v
}

// getInto reads visit id into out (any shape of the resource) and requires 200.
func (e *env) getInto(id string, out any) {
	e.t.Helper()
	if code := e.api(http.MethodGet, "/v1/visits/"+id, nil, out); code != http.StatusOK {
		e.t.Fatalf("GET /v1/visits/%s = %d; want 200", id, code)
	}
}

func visitBody(id string) map[string]any {
	return map[string]any{
		"id": id, "scheduled_at": "2026-12-01T15:00:00Z", "timezone": "America/New_York",
		"provider": map[string]string{"identity": "dr-lee", "name": "Dr. Lee", "phone": "+15551230001"},
		"patient":  map[string]string{"identity": "pat-8812", "name": "Sam", "phone": "+15551230002"},
	}
}

// cb is one Video callback for the visit's room.
type cb struct {
	event, sid, identity string
	at                   time.Time
}

var t0 = time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)

func (c cb) params(room string) url.Values {
	p := url.Values{
		"AccountSid":          {"AC00000000000000000000000000000000"},
		"RoomName":            {room},
		"RoomSid":             {"RM00000000000000000000000000000001"},
		"RoomStatus":          {"in-progress"},
		"RoomType":            {"group"},
		"StatusCallbackEvent": {c.event},
		"Timestamp":           {c.at.Format("2006-01-02T15:04:05.000Z")},
		"SequenceNumber":      {"1"},
	}
	if c.sid != "" {
		p.Set("ParticipantSid", c.sid)
		p.Set("ParticipantIdentity", c.identity)
		p.Set("ParticipantStatus", strings.TrimPrefix(c.event, "participant-"))
	}
	if c.event == "room-ended" {
		p.Set("RoomStatus", "completed")
	}
	return p
}

func join(sid, who string, min int) cb {
	return cb{"participant-connected", sid, who, t0.Add(time.Duration(min) * time.Minute)}
}

func leave(sid, who string, min int) cb {
	return cb{"participant-disconnected", sid, who, t0.Add(time.Duration(min) * time.Minute)}
}

func roomEnd(min int) cb { return cb{"room-ended", "", "", t0.Add(time.Duration(min) * time.Minute)} }

func (e *env) deliver(visitID string, c cb) {
	e.t.Helper()
	resp := e.postSigned("/twilio/video/status?visit="+visitID, c.params("visit-"+visitID))
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("deliver %s %s = %d; want 204", c.event, c.identity, resp.StatusCode)
	}
}

func TestTypicalVisitStepByStep(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	v := e.createVisit("V-42")
	if v.State != "scheduled" || v.Room.Name != "visit-V-42" || len(v.DialIn.PIN) != 6 {
		t.Fatalf("created visit = %+v; want scheduled, room visit-V-42, a 6-digit PIN", v)
	}
	steps := []struct {
		c    cb
		want string
	}{
		{join("PA1", "pat-8812", 0), "waiting"},
		{join("PA2", "dr-lee", 3), "in_progress"},
		{leave("PA2", "dr-lee", 5), "waiting"},
		{join("PA3", "dr-lee", 6), "in_progress"},
		{leave("PA1", "pat-8812", 20), "provider_waiting"},
		{leave("PA3", "dr-lee", 21), "interrupted"},
		{roomEnd(26), "completed"},
	}
	for _, s := range steps {
		e.deliver("V-42", s.c)
		if got := e.getVisit("V-42").State; got != s.want {
			t.Fatalf("after %s %s: state = %s; want %s", s.c.event, s.c.identity, got, s.want)
		}
	}
	got := e.getVisit("V-42")
	if len(got.Participants) != 3 || got.Room.SID == "" {
		t.Fatalf("participants = %+v, room sid %q; want 3 participants and the room SID", got.Participants, got.Room.SID)
	}
	wantStates := []string{"scheduled", "waiting", "in_progress", "waiting", "in_progress", "provider_waiting", "interrupted", "completed"}
	var states []string
	for _, en := range got.Timeline {
		states = append(states, en.State)
	}
	if fmt.Sprint(states) != fmt.Sprint(wantStates) {
		t.Fatalf("timeline states = %v; want %v", states, wantStates)
	}
}

func TestNoShowWhenRoomEndsWithoutPatient(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	e.createVisit("V-ns")
	e.deliver("V-ns", join("PA1", "dr-lee", 0))
	e.deliver("V-ns", leave("PA1", "dr-lee", 15))
	e.deliver("V-ns", roomEnd(20))
	if got := e.getVisit("V-ns").State; got != "no_show" {
		t.Fatalf("state = %s; want no_show", got)
	}
}

func TestCancelledVisitRecordsButIgnoresCallbacks(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	e.createVisit("V-c")
	var v visitJSON
	if code := e.api(http.MethodPost, "/v1/visits/V-c/cancel", nil, &v); code != http.StatusOK || v.State != "cancelled" {
		t.Fatalf("cancel = %d %s; want 200 cancelled", code, v.State)
	}
	e.deliver("V-c", join("PA1", "pat-8812", 0))
	e.deliver("V-c", join("PA2", "dr-lee", 1))
	got := e.getVisit("V-c")
	if got.State != "cancelled" {
		t.Fatalf("state after joins = %s; want cancelled", got.State)
	}
	var connected int
	for _, en := range got.Timeline {
		if en.Type == "participant-connected" {
			connected++
		}
	}
	if connected != 2 {
		t.Fatalf("timeline has %d participant-connected entries; want 2 (recorded, changing nothing)", connected)
	}
}

func TestUnmatchedAndMalformedCallbacks(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	resp := e.postSigned("/twilio/video/status", join("PA1", "x", 0).params("visit-unknown"))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("unknown room = %d; want 204", resp.StatusCode)
	}
	p := join("PA1", "x", 0).params("visit-unknown")
	p.Del("ParticipantSid")
	if resp := e.postSigned("/twilio/video/status", p); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("participant event without ParticipantSid = %d; want 400", resp.StatusCode)
	}
	p = join("PA1", "x", 0).params("visit-unknown")
	p.Set("Timestamp", "yesterday")
	if resp := e.postSigned("/twilio/video/status", p); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad Timestamp = %d; want 400", resp.StatusCode)
	}
	voice := url.Values{"CallSid": {"CA1"}, "CallStatus": {"ringing"}, "Timestamp": {"Sun, 25 Mar 2018 09:53:19 +0000"}}
	if resp := e.postSigned("/twilio/voice/status", voice); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("unknown call = %d; want 204", resp.StatusCode)
	}
	big := url.Values{"StatusCallbackEvent": {strings.Repeat("x", 5000)}}
	if resp := e.postSigned("/twilio/video/status", big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body = %d; want 413", resp.StatusCode)
	}
}

func TestBadSignaturesChangeNothing(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	e.createVisit("V-s")
	path := "/twilio/video/status?visit=V-s"
	p := join("PA1", "pat-8812", 0).params("visit-V-s")
	good := twiliosig.Sign(authToken, e.url+path, p)

	tampered := join("PA1", "dr-lee", 0).params("visit-V-s")
	cases := []struct {
		name   string
		path   string
		params url.Values
		header []string
	}{
		{"unsigned", path, p, nil},
		{"forged", path, p, []string{twiliosig.Header, twiliosig.Sign("wrong-token", e.url+path, p)}},
		{"tampered", path, tampered, []string{twiliosig.Header, good}},
		{"replayed to another URL", "/twilio/video/status?visit=V-other", p, []string{twiliosig.Header, good}},
		{"signed for the Host not the public URL", path, p, []string{twiliosig.Header, twiliosig.Sign(authToken, "http://evil.example"+path, p)}},
	}
	for _, c := range cases {
		if resp := e.postForm(c.path, c.params, c.header...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status = %d; want 403", c.name, resp.StatusCode)
		}
	}
	got := e.getVisit("V-s")
	if got.State != "scheduled" || len(got.Participants) != 0 || len(got.Timeline) != 1 {
		t.Fatalf("after rejected callbacks: %+v; want untouched scheduled visit", got)
	}
}

func TestRedisDownIs503(t *testing.T) {
	// Append-only with fsync: what was committed survives the restart, as in
	// production.
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	e := newEnv(t, srv.URL())
	e.createVisit("V-d")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	resp := e.postSigned("/twilio/video/status?visit=V-d", join("PA1", "pat-8812", 0).params("visit-V-d"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("callback with Redis down = %d; want 503", resp.StatusCode)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	e.deliver("V-d", join("PA1", "pat-8812", 0))
	if got := e.getVisit("V-d").State; got != "waiting" {
		t.Fatalf("after Redis came back: state = %s; want waiting", got)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/sandbox"
	sim "github.com/visitflow/visitflow/internal/simulate" // the command func is simulate
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

// sandboxServer is a whole visitflow (web + workers + scheduler, sandbox
// mode, real Redis) started in-process through run.
type sandboxServer struct {
	t       *testing.T
	base    string
	env     map[string]string
	session sandboxSession
}

// startSandboxServer starts `visitflow serve` on a free loopback port with
// the built-in emulator and real Redis, and waits until it is ready.
func startSandboxServer(t *testing.T) *sandboxServer {
	t.Helper()
	return startSandboxServerWith(t, nil)
}

// startSandboxServerWith is startSandboxServer with extra environment.
func startSandboxServerWith(t *testing.T, extra map[string]string) *sandboxServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"VISITFLOW_HTTP_ADDR":            addr,
		"VISITFLOW_HTTP_PUBLIC_BASE_URL": "http://" + addr,
		"VISITFLOW_REDIS_URL":            redistest.ForTest(t),
		"VISITFLOW_REDIS_NAMESPACE":      redistest.Namespace(t),
	}
	maps.Copy(env, extra)
	base := startServer(t, env) // also moves into a temp dir for the session file
	s := &sandboxServer{t: t, base: base, env: env}
	b, err := os.ReadFile(sandboxFile)
	if err != nil {
		t.Fatalf("sandbox session file: %v", err)
	}
	if err := json.Unmarshal(b, &s.session); err != nil {
		t.Fatal(err)
	}
	s.await("GET /readyz answers 200", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// await polls ok until it holds; the server works in other goroutines.
func (s *sandboxServer) await(what string, ok func() bool) {
	s.t.Helper()
	testenv.Eventually(s.t, what, ok)
}

// call sends a JSON request and decodes the answer into out; it returns the status.
func (s *sandboxServer) call(method, path string, body, out any, bearer bool) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+s.session.APIToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func (s *sandboxServer) createVisit(id string) handlers.VisitView {
	s.t.Helper()
	var v handlers.VisitView
	body := map[string]any{
		"id": id, "scheduled_at": time.Now().Add(2 * time.Minute).UTC().Format(time.RFC3339),
		"provider": map[string]string{"identity": "dr-lee", "phone": "+15551230001"},
		"patient":  map[string]string{"identity": "pat-8812", "phone": "+15551230002"},
	}
	if code := s.call(http.MethodPost, "/v1/visits", body, &v, true); code != http.StatusCreated {
		s.t.Fatalf("POST /v1/visits = %d; want 201", code)
	}
	return v
}

func (s *sandboxServer) visit(id string) handlers.VisitView {
	s.t.Helper()
	var v handlers.VisitView
	if code := s.call(http.MethodGet, "/v1/visits/"+id, nil, &v, true); code != http.StatusOK {
		s.t.Fatalf("GET /v1/visits/%s = %d; want 200", id, code)
	}
	return v
}

func (s *sandboxServer) awaitVisit(id, what string, ok func(handlers.VisitView) bool) handlers.VisitView {
	s.t.Helper()
	var v handlers.VisitView
	s.await(what, func() bool { v = s.visit(id); return ok(v) })
	return v
}

// emulator is the typed client of the server's emulator (/sandbox).
func (s *sandboxServer) emulator() *sandbox.Client { return sandbox.NewClient(s.base+"/sandbox", nil) }

// emulatorRoom is the emulator's inspection view of the room named name.
func (s *sandboxServer) emulatorRoom(name string) (sandbox.RoomView, bool) {
	s.t.Helper()
	rooms, err := s.emulator().RoomsNamed(context.Background(), name)
	if err != nil {
		s.t.Fatal(err)
	}
	if len(rooms) == 0 {
		return sandbox.RoomView{}, false
	}
	return rooms[0], true // the first of that name, as GET /rooms lists them
}

// control drives the emulator's control API (people joining and leaving).
func (s *sandboxServer) control(method, path string, body any, want int) {
	s.t.Helper()
	if code := s.call(method, "/sandbox"+path, body, nil, false); code != want {
		s.t.Fatalf("%s /sandbox%s = %d; want %d", method, path, code, want)
	}
}

func (s *sandboxServer) join(room, identity string) {
	s.t.Helper()
	s.control(http.MethodPost, "/rooms/"+room+"/participants", map[string]string{"identity": identity}, http.StatusCreated)
}

func (s *sandboxServer) leave(room, identity string) {
	s.t.Helper()
	s.control(http.MethodDelete, "/rooms/"+room+"/participants/"+identity, nil, http.StatusOK)
}

// twilioClient is the REST client a sandbox-mode server uses, with its credentials.
func (s *sandboxServer) twilioClient() *twilioapi.Client {
	s.t.Helper()
	c, err := twilioapi.New(twilioapi.Config{AccountSID: s.session.AccountSID, AuthToken: s.session.AuthToken,
		APIURL: s.base + "/sandbox", Timeout: 5 * time.Second}, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func TestE2ERoomIsCreatedWithOurCallbackBeforeThePatientJoins(t *testing.T) {
	s := startSandboxServer(t)
	v := s.createVisit("V-room")
	v = s.awaitVisit(v.ID, "the visit's room SID", func(v handlers.VisitView) bool { return v.Room.SID != "" })

	room, ok := s.emulatorRoom(v.Room.Name)
	if !ok {
		t.Fatalf("GET /sandbox/rooms has no room %q", v.Room.Name)
	}
	wantCallback := s.base + "/twilio/video/status?visit=V-room"
	if room.SID != v.Room.SID || room.Status != "in-progress" || room.StatusCallback != wantCallback {
		t.Fatalf("emulator room = %+v; want sid %s, in-progress, status_callback %s", room, v.Room.SID, wantCallback)
	}

	s.join(v.Room.Name, "pat-8812")
	v = s.awaitVisit(v.ID, "state waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
	var created, connected time.Time
	for _, e := range v.Timeline {
		switch {
		case e.Source == "worker" && e.Type == "room-created":
			created = e.At
		case e.Type == "participant-connected" && connected.IsZero():
			connected = e.At
		}
	}
	if created.IsZero() || connected.IsZero() || !created.Before(connected) {
		t.Fatalf("timeline room-created at %v, first participant-connected at %v; want the room recorded first\n%+v",
			created, connected, v.Timeline)
	}
	// The emulator delivered the join to our callback URL, and we took it.
	// It records our answer after reading it, which may be a moment after
	// the visit shows the commit: await the record.
	var events []sandbox.Event
	s.await("participant-connected delivered to "+wantCallback+" with 204", func() bool {
		var err error
		if events, err = s.emulator().EventsFor(context.Background(), v.Room.SID); err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			if ev.Name == "participant-connected" && ev.URL == wantCallback && ev.Status == http.StatusNoContent {
				return true
			}
		}
		return false
	})
}

func TestE2EHappyVisitCompletesAndItsRoomEnds(t *testing.T) {
	s := startSandboxServer(t)
	v := s.createVisit("V-happy")
	v = s.awaitVisit(v.ID, "the visit's room SID", func(v handlers.VisitView) bool { return v.Room.SID != "" })

	steps := []struct {
		do   func()
		want string
	}{
		{func() { s.join(v.Room.Name, "pat-8812") }, "waiting"},
		{func() { s.join(v.Room.Name, "dr-lee") }, "in_progress"},
		{func() { s.leave(v.Room.Name, "dr-lee") }, "waiting"},
		{func() { s.leave(v.Room.Name, "pat-8812") }, "interrupted"},
		{func() {
			if err := s.twilioClient().EndRoom(context.Background(), v.Room.SID); err != nil {
				t.Fatalf("EndRoom: %v", err)
			}
		}, "completed"},
	}
	for i, st := range steps {
		st.do()
		s.awaitVisit(v.ID, fmt.Sprintf("step %d: state %s", i, st.want), func(v handlers.VisitView) bool { return string(v.State) == st.want })
	}
	if room, _ := s.emulatorRoom(v.Room.Name); room.Status != "completed" {
		t.Fatalf("emulator room status = %q; want completed", room.Status)
	}
}

func TestE2ECancelledVisitEndsItsRoom(t *testing.T) {
	s := startSandboxServer(t)
	v := s.createVisit("V-cancel")
	v = s.awaitVisit(v.ID, "the visit's room SID", func(v handlers.VisitView) bool { return v.Room.SID != "" })
	s.join(v.Room.Name, "pat-8812")
	s.awaitVisit(v.ID, "state waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })

	if code := s.call(http.MethodPost, "/v1/visits/V-cancel/cancel", nil, nil, true); code != http.StatusOK {
		t.Fatalf("POST /v1/visits/V-cancel/cancel = %d; want 200", code)
	}
	s.await("the emulator ends the cancelled visit's room", func() bool {
		room, _ := s.emulatorRoom(v.Room.Name)
		return room.Status == "completed"
	})
	v = s.awaitVisit(v.ID, "room-end-requested in the timeline", func(v handlers.VisitView) bool {
		for _, e := range v.Timeline {
			if e.Type == "room-end-requested" {
				return true
			}
		}
		return false
	})
	if v.State != "cancelled" {
		t.Fatalf("state after cancel and room end = %s; want cancelled", v.State)
	}
}

func TestE2ECallbackWithWrongSignatureIsRefused(t *testing.T) {
	s := startSandboxServer(t)
	v := s.createVisit("V-forged")
	v = s.awaitVisit(v.ID, "the visit's room SID", func(v handlers.VisitView) bool { return v.Room.SID != "" })

	// An emulator that signs with another auth token plays an impostor
	// posting callbacks for the visit's room to our real callback URL.
	rogue := sandbox.New(sandbox.Options{AccountSID: s.session.AccountSID, AuthToken: "notthesandboxtoken0000000000000"})
	t.Cleanup(rogue.Close)
	srv := httptest.NewServer(rogue.Handler())
	t.Cleanup(srv.Close)
	client, err := twilioapi.New(twilioapi.Config{AccountSID: s.session.AccountSID, AuthToken: "notthesandboxtoken0000000000000",
		APIURL: srv.URL, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	callback := s.base + "/twilio/video/status?visit=V-forged"
	if _, err := client.CreateRoom(context.Background(), twilioapi.CreateRoomParams{UniqueName: v.Room.Name, StatusCallback: callback}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.URL+"/rooms/"+v.Room.Name+"/participants", "application/json", strings.NewReader(`{"identity":"pat-8812"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := rogue.WaitFor(ctx, func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "participant-connected" && (ev.Status != 0 || ev.Err != "")
	})
	if err != nil {
		t.Fatalf("the forged participant-connected was never delivered: %v", err)
	}
	if ev.Status != http.StatusForbidden {
		t.Fatalf("forged participant-connected answered %d (%s); want 403", ev.Status, ev.Err)
	}
	got := s.visit(v.ID)
	if got.State != "scheduled" || len(got.Participants) != 0 {
		t.Fatalf("after a forged join the visit is %s with participants %+v; want scheduled with none", got.State, got.Participants)
	}
	for _, e := range got.Timeline {
		if e.Type == "participant-connected" {
			t.Fatalf("forged callback recorded in the timeline: %+v", e)
		}
	}
}

func TestE2ESimulateScenariosReachTheirEndState(t *testing.T) {
	// The shipped config.yaml: the interpreter scenario relies on its
	// example line (the emulator's busy-once number); a 1s retry backoff
	// instead of 30s keeps the test short.
	shipped, err := filepath.Abs("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := startSandboxServerWith(t, map[string]string{
		"VISITFLOW_CONFIG":                    shipped,
		"VISITFLOW_INTERPRETER_RETRY_BACKOFF": "1s",
	})
	getenv := func(k string) string { return s.env[k] } // no API token: simulate reads the session file
	// What a scenario must show on the way, beyond its end state.
	shows := map[string][]string{
		"interpreter": {"attempt 1: busy; the server retries", "attempt 2 answered; IVR digits \"ww2ww1234#\" played", "interpreter.state is ended"},
		"dial-in":     {"the server finds no open visit for it"},
		"reminders":   {"reminder:r10m0s:s0 sent", "rescheduled from", "reminder:r1h0m0s:s1 sent"},
		"happy":       {"the patient's join link (open it in a browser): " + s.base + "/join/"},
	}
	for _, sc := range sim.Scenarios() {
		name := sc.Name
		t.Run(name, func(t *testing.T) {
			t.Parallel() // one server; every scenario plays its own visit
			var out syncBuffer
			if name == "waiting-room" {
				go s.playPatientFromLink(t, &out) // the person with a browser
			}
			err := run(context.Background(), []string{"simulate", "--scenario", name, "--timeout", "30s"}, getenv, &out, io.Discard)
			if err != nil {
				t.Fatalf("simulate --scenario %s = %v; want success\n%s", name, err, out.String())
			}
			want := fmt.Sprintf("end state: %s (expected %s)", sc.Want, sc.Want)
			for _, want := range append(shows[name], want) {
				if !strings.Contains(out.String(), want) {
					t.Fatalf("simulate --scenario %s printed no %q:\n%s", name, want, out.String())
				}
			}
		})
	}
}

func TestE2ESimulateFailsWhenTheVisitMissesItsEndState(t *testing.T) {
	s := startSandboxServer(t)
	// The happy steps, but expecting a no-show: simulate must report failure.
	wrong, err := sim.Lookup("happy")
	if err != nil {
		t.Fatal(err)
	}
	wrong.Name, wrong.Want = "happy-expecting-no-show", "no_show"
	var out bytes.Buffer
	player := sim.NewPlayer(sim.Options{BaseURL: s.base, Token: s.session.APIToken, AccountSID: s.session.AccountSID,
		AuthToken: s.session.AuthToken, HTTP: http.DefaultClient, Out: &out})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = player.Play(ctx, wrong)
	if err == nil || !strings.Contains(err.Error(), "expects no_show") {
		t.Fatalf("play(happy expecting no_show) = %v; want an error saying it expects no_show\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "end state: completed (expected no_show)") {
		t.Fatalf("output lacks the end-state line:\n%s", out.String())
	}
}

func TestSimulateUnknownScenarioIsRefused(t *testing.T) {
	err := run(context.Background(), []string{"simulate", "--scenario", "nope", "--token", "x"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `no scenario "nope"`) {
		t.Fatalf("simulate --scenario nope = %v; want an error naming the scenario", err)
	}
}

// syncBuffer is a bytes.Buffer that one goroutine writes while another reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// playPatientFromLink does what the join page's script does once the link
// simulate prints is opened and "Join the visit" tapped: exchange the invite
// for a token and join the emulator's room with it.
func (s *sandboxServer) playPatientFromLink(t *testing.T, out *syncBuffer) {
	link := regexp.MustCompile(`join link \(open it in a browser\): (\S+/join/([A-Za-z0-9_-]+))`)
	var m []string
	deadline := time.Now().Add(testenv.WaitLimit)
	for m = link.FindStringSubmatch(out.String()); m == nil; m = link.FindStringSubmatch(out.String()) {
		if time.Now().After(deadline) {
			t.Errorf("simulate printed no join link:\n%s", out.String())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	page, err := http.Get(m[1])
	if err != nil {
		t.Error(err)
		return
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %d; want the patient's page", m[1], page.StatusCode)
		return
	}
	var grant struct{ Identity, Room, Token string }
	if code := s.call(http.MethodPost, "/v1/join/"+m[2], nil, &grant, false); code != http.StatusOK {
		t.Errorf("POST /v1/join/{invite} = %d; want 200", code)
		return
	}
	body, _ := json.Marshal(map[string]string{"identity": grant.Identity, "kind": "browser", "token": grant.Token})
	resp, err := http.Post(s.base+"/sandbox/rooms/"+grant.Room+"/participants", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("joining the emulator's room with the page's token = %d; want 201", resp.StatusCode)
	}
}

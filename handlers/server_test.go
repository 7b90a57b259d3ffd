package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

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

// deliver posts c for the visit's room, signed, and requires 204.
func deliver(e *testenv.Env, visitID string, c cb) {
	e.T.Helper()
	resp := e.PostSigned("/twilio/video/status?visit="+visitID, c.params("visit-"+visitID))
	if resp.StatusCode != http.StatusNoContent {
		e.T.Fatalf("deliver %s %s = %d; want 204", c.event, c.identity, resp.StatusCode)
	}
}

func TestTypicalVisitStepByStep(t *testing.T) {
	e := testenv.New(t)
	v := e.CreateVisit(testenv.VisitBody("V-42"))
	if v.State != "scheduled" || v.Room.Name != "visit-V-42" || len(v.DialIn.PIN) != 9 {
		t.Fatalf("created visit = %+v; want scheduled, room visit-V-42, a 9-digit PIN", v)
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
		deliver(e, "V-42", s.c)
		if got := string(e.Visit("V-42").State); got != s.want {
			t.Fatalf("after %s %s: state = %s; want %s", s.c.event, s.c.identity, got, s.want)
		}
	}
	got := e.Visit("V-42")
	if len(got.Participants) != 3 || got.Room.SID == "" {
		t.Fatalf("participants = %+v, room sid %q; want 3 participants and the room SID", got.Participants, got.Room.SID)
	}
	wantStates := []string{"scheduled", "waiting", "in_progress", "waiting", "in_progress", "provider_waiting", "interrupted", "completed"}
	var states, changes []string
	for _, en := range got.Timeline {
		if en.Type == "state-changed" {
			changes = append(changes, en.Summary)
			continue
		}
		states = append(states, string(en.State))
	}
	if fmt.Sprint(states) != fmt.Sprint(wantStates) {
		t.Fatalf("timeline states = %v; want %v", states, wantStates)
	}
	// Each change of state is a row of its own, right after its cause.
	var wantChanges []string
	for i := 1; i < len(wantStates); i++ {
		wantChanges = append(wantChanges, wantStates[i-1]+" → "+wantStates[i])
	}
	if fmt.Sprint(changes) != fmt.Sprint(wantChanges) {
		t.Fatalf("state-changed rows = %q; want %q", changes, wantChanges)
	}
}

func TestNoShowWhenRoomEndsWithoutPatient(t *testing.T) {
	e := testenv.New(t)
	e.CreateVisit(testenv.VisitBody("V-ns"))
	deliver(e, "V-ns", join("PA1", "dr-lee", 0))
	deliver(e, "V-ns", leave("PA1", "dr-lee", 15))
	deliver(e, "V-ns", roomEnd(20))
	if got := e.Visit("V-ns").State; got != "no_show" {
		t.Fatalf("state = %s; want no_show", got)
	}
}

func TestCancelledVisitRecordsButIgnoresCallbacks(t *testing.T) {
	e := testenv.New(t)
	e.CreateVisit(testenv.VisitBody("V-c"))
	var v handlers.VisitView
	if code := e.API(http.MethodPost, "/v1/visits/V-c/cancel", nil, &v); code != http.StatusOK || v.State != "cancelled" {
		t.Fatalf("cancel = %d %s; want 200 cancelled", code, v.State)
	}
	deliver(e, "V-c", join("PA1", "pat-8812", 0))
	deliver(e, "V-c", join("PA2", "dr-lee", 1))
	got := e.Visit("V-c")
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
	e := testenv.New(t, testenv.Configure(func(c *config.Config) { c.HTTP.MaxBodyBytes = 4096 }))
	resp := e.PostSigned("/twilio/video/status", join("PA1", "x", 0).params("visit-unknown"))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("unknown room = %d; want 204", resp.StatusCode)
	}
	p := join("PA1", "x", 0).params("visit-unknown")
	p.Del("ParticipantSid")
	if resp := e.PostSigned("/twilio/video/status", p); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("participant event without ParticipantSid = %d; want 400", resp.StatusCode)
	}
	p = join("PA1", "x", 0).params("visit-unknown")
	p.Set("Timestamp", "yesterday")
	if resp := e.PostSigned("/twilio/video/status", p); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad Timestamp = %d; want 400", resp.StatusCode)
	}
	voice := url.Values{"CallSid": {"CA1"}, "CallStatus": {"ringing"}, "Timestamp": {"Sun, 25 Mar 2018 09:53:19 +0000"}}
	if resp := e.PostSigned("/twilio/voice/status", voice); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("unknown call = %d; want 204", resp.StatusCode)
	}
	big := url.Values{"StatusCallbackEvent": {strings.Repeat("x", 5000)}}
	if resp := e.PostSigned("/twilio/video/status", big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body = %d; want 413", resp.StatusCode)
	}
}

func TestBadSignaturesChangeNothing(t *testing.T) {
	e := testenv.New(t)
	e.CreateVisit(testenv.VisitBody("V-s"))
	path := "/twilio/video/status?visit=V-s"
	p := join("PA1", "pat-8812", 0).params("visit-V-s")
	good := e.Sign(path, p)

	tampered := join("PA1", "dr-lee", 0).params("visit-V-s")
	cases := []struct {
		name   string
		path   string
		params url.Values
		header []string
	}{
		{"unsigned", path, p, nil},
		{"forged", path, p, []string{twiliosig.Header, twiliosig.Sign("wrong-token", e.URL+path, p)}},
		{"tampered", path, tampered, []string{twiliosig.Header, good}},
		{"replayed to another URL", "/twilio/video/status?visit=V-other", p, []string{twiliosig.Header, good}},
		{"signed for the Host not the public URL", path, p, []string{twiliosig.Header, twiliosig.Sign(testenv.AuthToken, "http://evil.example"+path, p)}},
	}
	for _, c := range cases {
		if resp := e.PostForm(c.path, c.params, c.header...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status = %d; want 403", c.name, resp.StatusCode)
		}
	}
	got := e.Visit("V-s")
	if got.State != "scheduled" || len(got.Participants) != 0 || len(got.Timeline) != 1 {
		t.Fatalf("after rejected callbacks: %+v; want untouched scheduled visit", got)
	}
}

func TestRedisDownIs503(t *testing.T) {
	// Append-only with fsync: what was committed survives the restart, as in
	// production.
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	e := testenv.New(t, testenv.RedisURL(srv.URL()))
	e.CreateVisit(testenv.VisitBody("V-d"))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	resp := e.PostSigned("/twilio/video/status?visit=V-d", join("PA1", "pat-8812", 0).params("visit-V-d"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("callback with Redis down = %d; want 503", resp.StatusCode)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deliver(e, "V-d", join("PA1", "pat-8812", 0))
	if got := e.Visit("V-d").State; got != "waiting" {
		t.Fatalf("after Redis came back: state = %s; want waiting", got)
	}
}

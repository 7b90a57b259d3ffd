package workflows_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

func TestTokensAreRoomScopedAndExpireWithTheVisit(t *testing.T) {
	e := newLegEnv(t)
	at := time.Now().Add(20 * time.Minute).UTC().Truncate(time.Second) // the room window is open
	createAt(e, "V-tok", at)
	for _, c := range []struct{ role, identity string }{{"patient", "pat-8812"}, {"provider", "dr-lee"}} {
		var g grant
		if code := e.API(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": c.role}, &g); code != http.StatusOK {
			t.Fatalf("POST tokens %s = %d; want 200", c.role, code)
		}
		identity, room, exp, claims := decodeToken(t, g.Token)
		if identity != c.identity || room != "visit-V-tok" || g.Identity != c.identity || g.Room != "visit-V-tok" {
			t.Fatalf("%s token: identity %q room %q (answer %+v); want %s in visit-V-tok", c.role, identity, room, g, c.identity)
		}
		if want := at.Add(2 * time.Hour); !exp.Equal(want) || !g.ExpiresAt.Equal(want) {
			t.Fatalf("%s token exp = %v (expires_at %v); want scheduled_at + access_window = %v", c.role, exp, g.ExpiresAt, want)
		}
		if claims["iss"] != testenv.APIKey || claims["sub"] != e.Config.Twilio.AccountSID {
			t.Fatalf("token iss/sub = %v/%v; want %s/%s", claims["iss"], claims["sub"], testenv.APIKey, e.Config.Twilio.AccountSID)
		}
	}
	// The room exists before the token is returned, and the visit knows it.
	rooms, err := e.Sandbox.Client.Rooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].UniqueName != "visit-V-tok" || rooms[0].Status != "in-progress" {
		t.Fatalf("sandbox rooms = %+v; want visit-V-tok in progress (created once)", rooms)
	}
	if v := e.Visit("V-tok"); v.Room.SID != rooms[0].SID {
		t.Fatalf("visit room sid = %q; want %s", v.Room.SID, rooms[0].SID)
	}

	var errBody testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": "guest"}, &errBody); code != http.StatusBadRequest || errBody.Error.Field != "role" {
		t.Fatalf("POST tokens role=guest = %d %+v; want 400 naming role", code, errBody)
	}
	if code := e.API(http.MethodPost, "/v1/visits/V-nope/tokens", map[string]string{"role": "patient"}, nil); code != http.StatusNotFound {
		t.Fatalf("POST tokens for an unknown visit = %d; want 404", code)
	}
	e.API(http.MethodPost, "/v1/visits/V-tok/cancel", nil, nil)
	if code := e.API(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": "patient"}, &errBody); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST tokens for a cancelled visit = %d; want 422", code)
	}
}

// A token asked for 30 h ahead (the day-before reminder's link) lives at
// most 24 h, works only once the room opens, and creates no room; a room
// Twilio closes unused before anyone joined leaves the visit scheduled, and
// a new one is created when the room window opens.
func TestEarlyTokenIsShortAndCreatesNoRoom(t *testing.T) {
	e := newLegEnv(t)
	at := time.Now().Add(30 * time.Hour).UTC().Truncate(time.Second)
	createAt(e, "V-early", at)
	var g grant
	if code := e.API(http.MethodPost, "/v1/visits/V-early/tokens", map[string]string{"role": "patient"}, &g); code != http.StatusOK {
		t.Fatalf("POST tokens = %d; want 200", code)
	}
	_, _, exp, claims := decodeToken(t, g.Token)
	if limit := time.Now().Add(24 * time.Hour); exp.After(limit) || g.ExpiresAt.After(limit) {
		t.Fatalf("token exp %v (expires_at %v); want at most 24 h from now (%v)", exp, g.ExpiresAt, limit)
	}
	if nbf, _ := claims["nbf"].(float64); int64(nbf) != at.Add(-e.Config.Visits.RoomLead).Unix() {
		t.Fatalf("token nbf = %v; want when the room opens, %v", claims["nbf"], at.Add(-e.Config.Visits.RoomLead))
	}
	if rooms := e.Sandbox.RoomsNamed(t, "visit-V-early"); len(rooms) != 0 {
		t.Fatalf("rooms after an early token: %+v; want none", rooms)
	}
	// Connecting with it now is refused by Twilio: no ad-hoc room either.
	_, err := e.Sandbox.Client.JoinWithToken(context.Background(), "visit-V-early", "pat-8812", g.Token)
	var se *sandbox.Error
	if !errors.As(err, &se) || se.Code != 20105 {
		t.Fatalf("joining with the early token = %v; want refused, not yet valid (20105)", err)
	}

	// Should a room exist this early anyway, Twilio closes it unused.
	if _, err := workflows.EnsureRoom(e.Engine, context.Background(), "V-early"); err != nil {
		t.Fatal(err)
	}
	if err := e.Sandbox.Client.Advance(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	v := e.WaitVisit("V-early", "the room closed unused", func(v handlers.VisitView) bool {
		return testenv.TimelineHas(v, "room-closed-unused", "stays scheduled")
	})
	if v.State != "scheduled" || v.Room.SID != "" {
		t.Fatalf("visit after its room closed unused: state %s, room %+v; want scheduled, no room; timeline %+v", v.State, v.Room, v.Timeline)
	}
	info, err := e.Inspector.GetTaskInfo(e.QueueName(workflows.QueueCritical), "V-early:"+workflows.TypeRoomCreate+":s0:after-"+e.Sandbox.RoomsNamed(t, "visit-V-early")[0].SID)
	if err != nil || !info.NextProcessAt.Equal(at.Add(-e.Config.Visits.RoomLead)) {
		t.Fatalf("new room's job = %+v, %v; want it scheduled for when the room opens", info, err)
	}
	// The invite still works: a fresh token later.
	if code := e.API(http.MethodPost, "/v1/visits/V-early/tokens", map[string]string{"role": "provider"}, &g); code != http.StatusOK {
		t.Fatalf("POST tokens after the room closed = %d; want 200", code)
	}
}

// Inside the room window a room Twilio closed unused is replaced at once,
// and the visit goes on in the new one.
func TestRoomClosedUnusedIsRecreatedInTheWindow(t *testing.T) {
	e := newLegEnv(t)
	createAt(e, "V-again", time.Now().Add(10*time.Minute))
	first := e.WaitVisit("V-again", "its room", func(v handlers.VisitView) bool { return v.Room.SID != "" }).Room.SID
	if err := e.Sandbox.Client.Advance(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	v := e.WaitVisit("V-again", "a new room", func(v handlers.VisitView) bool {
		return v.Room.SID != "" && v.Room.SID != first
	})
	if v.State != "scheduled" {
		t.Fatalf("state after the first room closed unused = %s; want scheduled", v.State)
	}
	var g grant
	if code := e.API(http.MethodPost, "/v1/visits/V-again/tokens", map[string]string{"role": "patient"}, &g); code != http.StatusOK {
		t.Fatalf("POST tokens = %d", code)
	}
	if _, err := e.Sandbox.Client.JoinWithToken(context.Background(), "visit-V-again", "pat-8812", g.Token); err != nil {
		t.Fatalf("joining with the token = %v", err)
	}
	v = e.WaitVisit("V-again", "the patient waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
	// A late copy of the old room's room-ended changes nothing.
	e.PostSigned("/twilio/video/status?visit=V-again", url.Values{"AccountSid": {e.Config.Twilio.AccountSID},
		"RoomName": {"visit-V-again"}, "RoomSid": {first}, "RoomStatus": {"completed"}, "RoomType": {"group"},
		"StatusCallbackEvent": {"room-ended"}, "Timestamp": {time.Now().UTC().Format("2006-01-02T15:04:05.000Z")}})
	if v = e.Visit("V-again"); v.State != "waiting" || v.Room.SID == first {
		t.Fatalf("after a late room-ended of the old room: state %s, room %s; want waiting in the new room", v.State, v.Room.SID)
	}
}

// A client that connected by name before our room existed made an ad-hoc
// room, which Twilio reports nothing about: ours replaces it.
func TestAdHocRoomIsReplacedByOurs(t *testing.T) {
	e := newLegEnv(t)
	createAt(e, "V-adhoc", time.Now().Add(2*time.Hour))
	if _, err := e.Sandbox.Client.Join(context.Background(), "visit-V-adhoc", "pat-8812"); err != nil {
		t.Fatal(err)
	}
	v, err := workflows.EnsureRoom(e.Engine, context.Background(), "V-adhoc")
	if err != nil {
		t.Fatal(err)
	}
	rooms := e.Sandbox.RoomsNamed(t, "visit-V-adhoc")
	if len(rooms) != 2 || !rooms[0].AdHoc || rooms[0].Status != "completed" || rooms[1].AdHoc ||
		rooms[1].StatusCallback == "" || v.Room.SID != rooms[1].SID {
		t.Fatalf("rooms %+v, visit room %s; want the ad-hoc one ended and ours recorded", rooms, v.Room.SID)
	}
}

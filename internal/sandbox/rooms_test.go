package sandbox_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

const (
	testKey    = "SK0123456789abcdef0123456789abcdef"
	testSecret = "keysecret0123456789"
)

func TestRoomTimeoutsAreOneToSixtyMinutes(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		empty, unused string
		want          int
	}{{"1", "60", 201}, {"0", "5", 400}, {"5", "61", 400}, {"x", "5", 400}} {
		code, body := e.restForm("POST", "/v1/Rooms", url.Values{"UniqueName": {"r-" + tt.empty + "-" + tt.unused},
			"EmptyRoomTimeout": {tt.empty}, "UnusedRoomTimeout": {tt.unused}}, testAccount, testToken)
		if code != tt.want {
			t.Errorf("EmptyRoomTimeout=%s UnusedRoomTimeout=%s: %d %s; want %d", tt.empty, tt.unused, code, body, tt.want)
		}
	}
}

// A REST room nobody joins ends after its unused timeout with room-ended;
// an emptied room after its empty timeout. Advance brings the timeouts
// closer instead of waiting for them.
func TestUnusedAndEmptyRoomsEndWithRoomEnded(t *testing.T) {
	e := newEnv(t, func(o *sandbox.Options) { o.MinuteLength = time.Hour }) // nothing ends by itself
	unused, err := e.api.CreateRoom(e.ctx(), twilioapi.CreateRoomParams{UniqueName: "unused",
		StatusCallback: e.app.url("/twilio/video/status"), UnusedRoomTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	emptied, err := e.api.CreateRoom(e.ctx(), twilioapi.CreateRoomParams{UniqueName: "emptied",
		StatusCallback: e.app.url("/twilio/video/status"), UnusedRoomTimeout: 60 * time.Minute, EmptyRoomTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctl.Join(e.ctx(), "emptied", "pat-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctl.Leave(e.ctx(), "emptied", "pat-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.ctl.Advance(e.ctx(), 9*time.Minute); err != nil {
		t.Fatal(err)
	}
	e.app.waitHit("the emptied room ending after 5 minutes", videoEvent("room-ended", emptied.SID))
	if r, _ := e.ctl.Room(e.ctx(), "unused"); r.Status != "in-progress" {
		t.Fatalf("unused room after 9 of its 10 minutes: %s; want in-progress", r.Status)
	}
	if err := e.ctl.Advance(e.ctx(), time.Minute); err != nil {
		t.Fatal(err)
	}
	ended := e.app.waitHit("the unused room ending", videoEvent("room-ended", unused.SID))
	if ended.Form.Get("RoomStatus") != "completed" {
		t.Fatalf("room-ended = %v; want RoomStatus completed", ended.Form)
	}
	// Ending a room that is no longer in progress is 400 53112.
	err = e.api.EndRoom(e.ctx(), unused.SID) // twilioapi treats an ended room as done…
	if err != nil {
		t.Fatalf("EndRoom of an ended room through twilioapi = %v; want nil", err)
	}
	code, body := e.restForm("POST", "/v1/Rooms/"+unused.SID, url.Values{"Status": {"completed"}}, testAccount, testToken)
	if code != http.StatusBadRequest || !contains(body, "53112") {
		t.Fatalf("ending an ended room = %d %s; want 400 53112", code, body)
	}
}

// A client connecting by name when no in-progress room has it creates an
// ad-hoc room, which has no status callback.
func TestJoinWithoutRoomCreatesAnAdHocRoom(t *testing.T) {
	e := newEnv(t)
	p, err := e.ctl.Join(e.ctx(), "visit-early", "pat-1")
	if err != nil {
		t.Fatalf("Join with no room = %v; want an ad-hoc room", err)
	}
	r, err := e.ctl.Room(e.ctx(), "visit-early")
	if err != nil {
		t.Fatal(err)
	}
	if !r.AdHoc || r.StatusCallback != "" || r.Status != "in-progress" || len(r.Participants) != 1 || r.Participants[0].SID != p.SID {
		t.Fatalf("room = %+v; want an ad-hoc room in progress with pat-1, no status callback", r)
	}
	for _, ev := range e.emu.Events() {
		if ev.SID == r.SID && ev.URL != "" {
			t.Fatalf("an ad-hoc room called back: %+v", ev)
		}
	}
	// A REST create of that name now finds it in progress.
	code, _ := e.restForm("POST", "/v1/Rooms", url.Values{"UniqueName": {"visit-early"}}, testAccount, testToken)
	if code != http.StatusBadRequest {
		t.Fatalf("REST create over the ad-hoc room = %d; want 400 53113", code)
	}
}

// Joining with an access token is checked as Twilio checks it.
func TestJoinChecksTheAccessToken(t *testing.T) {
	e := newEnv(t, func(o *sandbox.Options) { o.APIKeySID, o.APIKeySecret = testKey, testSecret })
	if _, err := e.api.CreateRoom(e.ctx(), twilioapi.CreateRoomParams{UniqueName: "visit-T", UnusedRoomTimeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	mint := func(secret, identity, room string, until time.Time) string {
		c, err := twilioapi.New(twilioapi.Config{AccountSID: testAccount, AuthToken: testToken, APIKey: testKey, APISecret: secret}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := c.AccessToken(identity, room, time.Time{}, until)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	soon := time.Now().Add(time.Hour)
	for _, tt := range []struct {
		name, token string
		status      int
		code        int
	}{
		{"good", mint(testSecret, "pat-1", "visit-T", soon), 201, 0},
		{"24h", mint(testSecret, "pat-2", "visit-T", time.Now().Add(24*time.Hour-time.Minute)), 201, 0},
		{"over 24h", mint(testSecret, "pat-1", "visit-T", time.Now().Add(25*time.Hour)), 401, 20157},
		{"expired", mint(testSecret, "pat-1", "visit-T", time.Now().Add(-time.Minute)), 401, 20104},
		{"wrong secret", mint("othersecret", "pat-1", "visit-T", soon), 401, 20107},
		{"other room", mint(testSecret, "pat-1", "visit-U", soon), 403, 20106},
		{"other identity", mint(testSecret, "dr-lee", "visit-T", soon), 403, 20106},
		{"garbage", "not.a.token", 401, 20101},
	} {
		identity := "pat-1"
		if tt.name == "24h" {
			identity = "pat-2"
		}
		_, err := e.ctl.JoinWithToken(e.ctx(), "visit-T", identity, tt.token)
		var se *sandbox.Error
		switch {
		case tt.status == 201 && err != nil:
			t.Errorf("%s: %v; want joined", tt.name, err)
		case tt.status != 201 && (!errors.As(err, &se) || se.StatusCode != tt.status || se.Code != tt.code):
			t.Errorf("%s: %v; want %d with code %d", tt.name, err, tt.status, tt.code)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

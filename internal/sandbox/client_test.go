package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

// clientEnv is an Emulator served at the root of an httptest server, driven
// through sandbox.Client, with our app receiving its webhooks.
type clientEnv struct {
	emu *sandbox.Emulator
	url string // the emulator's base URL: the server's root
	c   *sandbox.Client
	api *twilioapi.Client
	app *app
}

func newClientEnv(t *testing.T, tweak ...func(*sandbox.Options)) *clientEnv {
	t.Helper()
	e := serveEnv(t, "", tweak...)
	// A trailing slash on the base URL is allowed; nil means http.DefaultClient.
	return &clientEnv{emu: e.emu, url: e.base, c: sandbox.NewClient(e.base+"/", nil), api: e.api, app: e.app}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// wantStatusErr checks that err is a sandbox.Error with status code whose
// message names the operation, the status and want.
func wantStatusErr(t *testing.T, what string, err error, code int, op, want string) {
	t.Helper()
	var se *sandbox.Error
	if !errors.As(err, &se) || se.StatusCode != code || sandbox.StatusCode(err) != code {
		t.Errorf("%s: error %v; want a *sandbox.Error with status %d", what, err, code)
		return
	}
	msg := err.Error()
	for _, s := range []string{"sandbox " + op + ":", http.StatusText(code), want} {
		if !strings.Contains(msg, s) {
			t.Errorf("%s: error %q does not contain %q", what, msg, s)
		}
	}
}

func participant(r sandbox.RoomView, identity string) (sandbox.ParticipantView, bool) {
	for _, p := range r.Participants {
		if p.Identity == identity {
			return p, true
		}
	}
	return sandbox.ParticipantView{}, false
}

func tracksOf(p sandbox.ParticipantView) []string {
	var kinds []string
	for _, t := range p.Tracks {
		kind, sid, _ := strings.Cut(t, ":")
		if !strings.HasPrefix(sid, "MT") {
			kind = "bad track " + t
		}
		kinds = append(kinds, kind)
	}
	return kinds
}

func TestClientRoomsJoinLeave(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	cb := e.app.url("/twilio/video/status")
	created, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-C-1", StatusCallback: cb,
		UnusedRoomTimeout: time.Hour, EmptyRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	rooms, err := e.c.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].SID != created.SID || rooms[0].UniqueName != "visit-C-1" ||
		rooms[0].Status != "in-progress" || rooms[0].StatusCallback != cb || rooms[0].EmptyRoomTimeout != 60 ||
		rooms[0].Participants == nil || len(rooms[0].Participants) != 0 {
		t.Fatalf("Rooms = %+v; want visit-C-1 in progress with its callback, no participants", rooms)
	}

	pat, err := e.c.Join(ctx, "visit-C-1", "pat-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pat.SID, "PA") || pat.Identity != "pat-1" || pat.Kind != sandbox.ParticipantBrowser ||
		pat.Status != "connected" || !slices.Equal(tracksOf(pat), []string{"audio", "video"}) {
		t.Errorf("Join = %+v; want pat-1 connected from a browser with audio and video", pat)
	}
	doc, err := e.c.JoinAs(ctx, "visit-C-1", "dr-lee", sandbox.ParticipantPhone)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "phone" || !slices.Equal(tracksOf(doc), []string{"audio"}) {
		t.Errorf("JoinAs phone = %+v; want a phone participant with audio only", doc)
	}

	room, err := e.c.Room(ctx, "visit-C-1")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := participant(room, "pat-1"); !ok || p.SID != pat.SID || p.Status != "connected" {
		t.Errorf("Room after Join: participants %+v; want pat-1 connected", room.Participants)
	}
	if p, ok := participant(room, "dr-lee"); !ok || p.Status != "connected" {
		t.Errorf("Room after JoinAs: participants %+v; want dr-lee connected", room.Participants)
	}
	if bySID, err := e.c.Room(ctx, created.SID); err != nil || bySID.UniqueName != "visit-C-1" {
		t.Errorf("Room(sid) = %+v, %v; want visit-C-1", bySID, err)
	}

	left, err := e.c.Leave(ctx, "visit-C-1", "pat-1")
	if err != nil {
		t.Fatal(err)
	}
	if left.SID != pat.SID || left.Status != "disconnected" || left.DisconnectedAt == nil {
		t.Errorf("Leave = %+v; want pat-1 disconnected with disconnected_at", left)
	}
	room, err = e.c.Room(ctx, "visit-C-1")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := participant(room, "pat-1"); p.Status != "disconnected" {
		t.Errorf("Room after Leave: pat-1 = %+v; want disconnected", p)
	}
	if p, _ := participant(room, "dr-lee"); p.Status != "connected" {
		t.Errorf("Room after Leave: dr-lee = %+v; want still connected", p)
	}

	_, err = e.c.Leave(ctx, "visit-C-1", "pat-1")
	wantStatusErr(t, "Leave twice", err, http.StatusNotFound, "Leave", "no connected participant")
	_, err = e.c.JoinAs(ctx, "visit-C-1", "pat-1", "fax")
	wantStatusErr(t, "JoinAs bad kind", err, http.StatusBadRequest, "JoinAs", "kind")
	if _, err := e.c.Room(ctx, "visit-never"); !errors.Is(err, sandbox.ErrNotFound) || !strings.Contains(err.Error(), "visit-never") {
		t.Errorf("Room(unknown) error = %v; want ErrNotFound naming the room", err)
	}

	// The events the room's callbacks were delivered with, for that room only.
	if _, err := e.emu.WaitFor(ctx, emuStatus(sandbox.KindVideoStatus, "participant-disconnected", created.SID)); err != nil {
		t.Fatal(err)
	}
	events, err := e.c.EventsFor(ctx, created.SID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ev := range events {
		if ev.SID != created.SID || ev.Kind != sandbox.KindVideoStatus {
			t.Errorf("EventsFor(%s) has %+v", created.SID, ev)
		}
		if ev.Params.Get("ParticipantIdentity") == "pat-1" && ev.Name != "track-added" && ev.Name != "track-removed" {
			names = append(names, ev.Name)
			if ev.URL != cb || ev.Method != http.MethodPost || ev.Status != http.StatusNoContent {
				t.Errorf("%s event = %+v; want POSTed to %s, answered 204", ev.Name, ev, cb)
			}
		}
	}
	if !slices.Equal(names, []string{"participant-connected", "participant-disconnected"}) {
		t.Errorf("EventsFor(room) for pat-1 = %v; want participant-connected, participant-disconnected", names)
	}

	// A room of the same name created after the first ended: both are listed,
	// Room picks the one in progress.
	if err := e.api.EndRoom(ctx, created.SID); err != nil {
		t.Fatal(err)
	}
	again, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-C-1", UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	named, err := e.c.RoomsNamed(ctx, "visit-C-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(named) != 2 || named[0].SID != created.SID || named[0].Status != "completed" || named[0].EndedAt == nil ||
		named[1].SID != again.SID {
		t.Errorf("RoomsNamed = %+v; want the ended room then the new one", named)
	}
	if cur, err := e.c.Room(ctx, "visit-C-1"); err != nil || cur.SID != again.SID || cur.Status != "in-progress" {
		t.Errorf("Room(name) = %+v, %v; want the new in-progress room %s", cur, err, again.SID)
	}
	if other, err := e.c.RoomsNamed(ctx, "visit-other"); err != nil || len(other) != 0 {
		t.Errorf("RoomsNamed(unknown) = %+v, %v; want none", other, err)
	}
}

func TestClientIncomingCallAndDigits(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	e.app.answer("/twilio/voice/incoming", func(url.Values) string {
		return `<Response><Gather numDigits="4" action="/twilio/voice/pin"><Say>PIN?</Say></Gather></Response>`
	})
	e.app.answer("/twilio/voice/pin", func(url.Values) string { return `<Response><Hangup/></Response>` })

	call, err := e.c.IncomingCall(ctx, "+15551230002")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(call.SID, "CA") || call.Direction != "inbound" || call.Status != "ringing" ||
		call.From != "+15551230002" || call.To != ourNumber {
		t.Errorf("IncomingCall = %+v; want an inbound call from +15551230002 to our number, ringing", call)
	}
	got, err := e.c.Digits(ctx, call.SID, "4829")
	if err != nil {
		t.Fatal(err)
	}
	if got.SID != call.SID || !strings.Contains(got.PendingDigits, "4829") {
		t.Errorf("Digits = %+v; want the call with 4829 pending", got)
	}
	pin := e.app.waitHit("gather action", func(h hit) bool { return h.Path == "/twilio/voice/pin" })
	if pin.Form.Get("Digits") != "4829" || pin.Form.Get("CallSid") != call.SID {
		t.Errorf("gather action = %v; want Digits 4829 for %s", pin.Form, call.SID)
	}
	e.app.waitHit("completed", callStatus("completed", call.SID))

	calls, err := e.c.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].SID != call.SID || calls[0].Status != "completed" || calls[0].EndedAt == nil ||
		!strings.Contains(strings.Join(calls[0].Log, "\n"), "4829") {
		t.Errorf("Calls = %+v; want the one call, completed, its log showing the digits", calls)
	}

	_, err = e.c.Digits(ctx, call.SID, "1")
	wantStatusErr(t, "Digits on an ended call", err, http.StatusConflict, "Digits", "call has ended")
	_, err = e.c.Digits(ctx, "CA0123456789abcdef0123456789abcdef", "1")
	wantStatusErr(t, "Digits on an unknown call", err, http.StatusNotFound, "Digits", "no such call")
	_, err = e.c.Digits(ctx, call.SID, "12a")
	wantStatusErr(t, "Digits with a letter", err, http.StatusBadRequest, "Digits", "digits")
	_, err = e.c.IncomingCall(ctx, "555-1234")
	wantStatusErr(t, "IncomingCall from a non-E.164 number", err, http.StatusBadRequest, "IncomingCall", "E.164")

	to, err := e.c.IncomingCallTo(ctx, "+15551230002", "+15551239999")
	if err != nil {
		t.Fatal(err)
	}
	if to.To != "+15551239999" || to.Direction != "inbound" {
		t.Errorf("IncomingCallTo = %+v; want an inbound call to +15551239999", to)
	}

	bare := newClientEnv(t, func(o *sandbox.Options) { o.IncomingVoiceURL = "" })
	_, err = bare.c.IncomingCall(ctx, "+15551230002")
	wantStatusErr(t, "IncomingCall without IncomingVoiceURL", err, http.StatusConflict, "IncomingCall", "IncomingVoiceURL")
}

func TestClientIncomingSMS(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	e.app.answer("/twilio/sms/incoming", func(f url.Values) string {
		return `<Response><Message>Got: ` + f.Get("Body") + `</Message></Response>`
	})

	res, err := e.c.IncomingSMS(ctx, "+15551230002", "HELLO")
	if err != nil {
		t.Fatal(err)
	}
	m := res.Message
	if !strings.HasPrefix(m.SID, "SM") || m.Direction != "inbound" || m.From != "+15551230002" || m.To != ourNumber ||
		m.Body != "HELLO" || m.Status != "received" {
		t.Errorf("IncomingSMS message = %+v; want inbound HELLO from +15551230002 to our number, received", m)
	}
	if res.WebhookStatus != http.StatusOK || res.WebhookError != "" || len(res.Replies) != 1 ||
		res.Replies[0].Body != "Got: HELLO" || res.Replies[0].Direction != "outbound-reply" || res.Replies[0].To != "+15551230002" {
		t.Errorf("IncomingSMS = %+v; want webhook 200 and the reply to the sender", res)
	}
	if h := e.app.waitHit("sms webhook", func(h hit) bool { return h.Path == "/twilio/sms/incoming" }); h.Form.Get("MessageSid") != m.SID {
		t.Errorf("sms webhook MessageSid = %q; want %s", h.Form.Get("MessageSid"), m.SID)
	}

	msgs, err := e.c.Messages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].SID != m.SID || msgs[0].Direction != "inbound" || msgs[0].Body != "HELLO" ||
		msgs[1].Direction != "outbound-reply" {
		t.Errorf("Messages = %+v; want the inbound SMS then the reply", msgs)
	}

	to, err := e.c.IncomingSMSTo(ctx, "+15551230002", "+15551239999", "hi")
	if err != nil {
		t.Fatal(err)
	}
	if to.Message.To != "+15551239999" || to.Message.Body != "hi" {
		t.Errorf("IncomingSMSTo = %+v; want hi to +15551239999", to.Message)
	}
	_, err = e.c.IncomingSMS(ctx, "nobody", "hi")
	wantStatusErr(t, "IncomingSMS from a non-E.164 number", err, http.StatusBadRequest, "IncomingSMS", "E.164")

	// A webhook that fails is reported in the result, not as an error.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	b := newClientEnv(t, func(o *sandbox.Options) { o.IncomingSMSURL = broken.URL })
	res, err = b.c.IncomingSMS(ctx, "+15551230002", "HELLO")
	if err != nil || res.WebhookStatus != http.StatusInternalServerError || res.WebhookError == "" || len(res.Replies) != 0 {
		t.Errorf("IncomingSMS to a failing webhook = %+v, %v; want webhook 500 with its error, no replies", res, err)
	}
}

func TestClientEventsMatchEmulator(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	room, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-C-2", UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Join(ctx, "visit-C-2", "pat-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.IncomingSMS(ctx, "+15551230002", "hi"); err != nil {
		t.Fatal(err)
	}
	want := e.emu.Events()
	got, err := e.c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 || len(got) < len(want) { // more may have been recorded in between
		t.Fatalf("Events = %d events; the emulator had recorded %d before", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || !g.At.Equal(w.At) || g.Kind != w.Kind || g.Name != w.Name || g.SID != w.SID ||
			g.URL != w.URL || g.Status != w.Status || g.Params.Encode() != w.Params.Encode() {
			t.Errorf("Events[%d] = %+v; the emulator recorded %+v", i, g, w)
		}
	}
	// The room's callbacks are delivered (and recorded) asynchronously:
	// await the participant's, then every event listed must be the room's,
	// and the inbound SMS must be left out.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.emu.WaitFor(wctx, func(ev sandbox.Event) bool {
		return ev.SID == room.SID && ev.Name == "participant-connected"
	}); err != nil {
		t.Fatalf("waiting for the room's participant-connected: %v", err)
	}
	forRoom, err := e.c.EventsFor(ctx, room.SID)
	if err != nil {
		t.Fatal(err)
	}
	if len(forRoom) == 0 {
		t.Fatal("EventsFor(room) is empty; want the room's events")
	}
	for _, ev := range forRoom {
		if ev.SID != room.SID {
			t.Errorf("EventsFor(room) lists %+v; want only the room's events", ev)
		}
	}
}

// TestInspectionJSONNames pins the JSON field names other programs read.
func TestInspectionJSONNames(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	e.app.answer("/twilio/voice/incoming", func(url.Values) string { return `<Response><Pause length="600"/></Response>` })
	if _, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-C-3", UnusedRoomTimeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Join(ctx, "visit-C-3", "pat-1"); err != nil {
		t.Fatal(err)
	}
	call, err := e.c.IncomingCall(ctx, "+15551230002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Digits(ctx, call.SID, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.IncomingSMS(ctx, "+15551230002", "hi"); err != nil {
		t.Fatal(err)
	}
	first := func(path, list string) map[string]any {
		t.Helper()
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var body map[string][]map[string]any
		if err := json.Unmarshal(raw, &body); err != nil || len(body[list]) == 0 {
			t.Fatalf("GET %s = %s (%v); want a non-empty %q list", path, raw, err, list)
		}
		return body[list][0]
	}
	for _, tt := range []struct {
		path, list string
		keys       []string
	}{
		{"/calls", "calls", []string{"sid", "direction", "from", "to", "status", "pending_digits", "created_at", "started_at", "ended_at", "log"}},
		{"/messages", "messages", []string{"sid", "direction", "from", "to", "body", "status", "created_at"}},
		{"/rooms", "rooms", []string{"sid", "unique_name", "type", "status", "empty_room_timeout", "unused_room_timeout", "max_participants", "created_at", "ended_at", "participants"}},
		{"/events", "events", []string{"seq", "at", "kind", "name", "sid", "params"}},
	} {
		got := first(tt.path, tt.list)
		for _, k := range tt.keys {
			if _, ok := got[k]; !ok {
				t.Errorf("GET %s: %v has no %q", tt.path, got, k)
			}
		}
		if tt.list == "rooms" {
			parts, _ := got["participants"].([]any)
			p, _ := parts[0].(map[string]any)
			for _, k := range []string{"sid", "identity", "kind", "status", "connected_at", "disconnected_at", "tracks"} {
				if _, ok := p[k]; !ok {
					t.Errorf("GET /rooms participant %v has no %q", p, k)
				}
			}
		}
	}
	resp, err := http.Post(e.url+"/messages/incoming", "application/json", strings.NewReader(`{"from":"+15551230002","body":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sms map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&sms)
	for _, k := range []string{"message", "webhook_status", "replies"} {
		if _, ok := sms[k]; !ok {
			t.Errorf("POST /messages/incoming answer %v has no %q", sms, k)
		}
	}
}

func TestClientErrorsAndPrefix(t *testing.T) {
	e := newClientEnv(t)
	ctx := testCtx(t)
	// The handler strips a leading /sandbox, so the app's mount point works too.
	prefixed := sandbox.NewClient(e.url+"/sandbox", nil)
	if _, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-C-4", UnusedRoomTimeout: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if r, err := prefixed.Room(ctx, "visit-C-4"); err != nil || r.Status != "in-progress" {
		t.Errorf("Room through /sandbox = %+v, %v; want visit-C-4 in progress", r, err)
	}

	// A non-JSON error body is reported as text.
	e.emu.Close()
	_, err := e.c.Calls(ctx)
	wantStatusErr(t, "Calls after Close", err, http.StatusServiceUnavailable, "Calls", "sandbox closed")
	if !strings.Contains(err.Error(), "GET /calls") {
		t.Errorf("Calls after Close error %q does not name the request", err)
	}

	// A transport error names the operation too.
	dead := sandbox.NewClient("http://127.0.0.1:1", nil)
	if _, err := dead.Messages(ctx); err == nil || !strings.Contains(err.Error(), "sandbox Messages: GET /messages") ||
		sandbox.StatusCode(err) != 0 {
		t.Errorf("Messages on a dead server error = %v; want one naming the operation, status 0", err)
	}
}

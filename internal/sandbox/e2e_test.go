package sandbox_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

// These tests drive the emulator the way visitflow does: through twilioapi
// and twilio-go over HTTP, with signed callbacks checked by an independent
// validator in a separate "app" server.

const (
	isoMillis = "2006-01-02T15:04:05.000Z"
	allEvents = "initiated ringing answered completed"
)

func seq(t *testing.T, h hit) int {
	t.Helper()
	n, err := strconv.Atoi(h.Form.Get("SequenceNumber"))
	if err != nil {
		t.Fatalf("SequenceNumber %q: %v", h.Form.Get("SequenceNumber"), err)
	}
	return n
}

func TestRoomLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	cb := e.app.url("/twilio/video/status?visit=V-1#rc=2&rp=all")
	room, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{
		UniqueName: "visit-V-1", StatusCallback: cb,
		EmptyRoomTimeout: time.Minute, UnusedRoomTimeout: time.Hour,
	})
	if err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	if !strings.HasPrefix(room.SID, "RM") || len(room.SID) != 34 || room.Status != "in-progress" || room.UniqueName != "visit-V-1" {
		t.Errorf("CreateRoom = %+v; want an in-progress RM… room named visit-V-1", room)
	}

	created := e.app.waitHit("room-created", videoEvent("room-created", room.SID))
	if created.Query.Get("visit") != "V-1" {
		t.Errorf("room-created query = %v; want the callback URL's visit=V-1", created.Query)
	}
	for k, want := range map[string]string{"RoomName": "visit-V-1", "RoomStatus": "in-progress", "RoomType": "group",
		"AccountSid": testAccount, "SequenceNumber": "0"} {
		if got := created.Form.Get(k); got != want {
			t.Errorf("room-created %s = %q; want %q", k, got, want)
		}
	}
	if _, err := time.Parse(isoMillis, created.Form.Get("Timestamp")); err != nil {
		t.Errorf("room-created Timestamp %q: %v", created.Form.Get("Timestamp"), err)
	}

	// Creating again is idempotent (53113 → fetch by name).
	again, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-V-1", StatusCallback: cb})
	if err != nil || again.SID != room.SID {
		t.Errorf("CreateRoom again = %+v, %v; want %s", again, err, room.SID)
	}
	if got, err := e.api.FetchRoom(ctx, "visit-V-1"); err != nil || got.SID != room.SID {
		t.Errorf("FetchRoom(name) = %+v, %v; want %s", got, err, room.SID)
	}

	joined, err := e.ctl.JoinAs(ctx, "visit-V-1", "pat-1", sandbox.ParticipantBrowser)
	if err != nil {
		t.Fatal(err)
	}
	conn := e.app.waitHit("participant-connected", videoEvent("participant-connected", room.SID))
	if conn.Form.Get("ParticipantIdentity") != "pat-1" || conn.Form.Get("ParticipantSid") != joined.SID ||
		conn.Form.Get("ParticipantStatus") != "connected" {
		t.Errorf("participant-connected = %v; want pat-1 %v connected", conn.Form, joined.SID)
	}
	e.app.waitHit("video track", func(h hit) bool { return videoEvent("track-added", room.SID)(h) && h.Form.Get("TrackKind") == "video" })

	if _, err := e.ctl.Leave(ctx, "visit-V-1", "pat-1"); err != nil {
		t.Fatal(err)
	}
	left := e.app.waitHit("participant-disconnected", videoEvent("participant-disconnected", room.SID))
	if left.Form.Get("ParticipantDuration") == "" || left.Form.Get("ParticipantStatus") != "disconnected" {
		t.Errorf("participant-disconnected = %v; want ParticipantDuration and status disconnected", left.Form)
	}

	// Empty for EmptyRoomTimeout (one emulator minute): the room ends.
	ended := e.app.waitHit("room-ended", videoEvent("room-ended", room.SID))
	if ended.Form.Get("RoomStatus") != "completed" || ended.Form.Get("RoomDuration") == "" {
		t.Errorf("room-ended = %v; want RoomStatus completed and RoomDuration", ended.Form)
	}
	var seqs []int
	for _, h := range e.app.all(func(h hit) bool { return h.Form.Get("RoomSid") == room.SID }) {
		seqs = append(seqs, seq(t, h))
	}
	if !slices.IsSorted(seqs) || seqs[len(seqs)-1] != len(seqs)-1 {
		t.Errorf("room callbacks arrived with SequenceNumbers %v; want 0, 1, 2… in order", seqs)
	}

	if _, err := e.api.FetchRoom(ctx, "visit-V-1"); twilioapi.Code(err) != 20404 || !twilioapi.Permanent(err) {
		t.Errorf("FetchRoom(name of ended room) error = %v; want permanent 20404", err)
	}
	if got, err := e.api.FetchRoom(ctx, room.SID); err != nil || got.Status != "completed" {
		t.Errorf("FetchRoom(sid) = %+v, %v; want completed", got, err)
	}
	if err := e.api.EndRoom(ctx, room.SID); err != nil {
		t.Errorf("EndRoom(ended room) = %v; want nil", err)
	}
	next, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-V-1"})
	if err != nil || next.SID == room.SID {
		t.Errorf("CreateRoom after the first ended = %+v, %v; want a new room", next, err)
	}
}

func TestUnusedRoomEnds(t *testing.T) {
	e := newEnv(t)
	room, err := e.api.CreateRoom(e.ctx(), twilioapi.CreateRoomParams{UniqueName: "visit-U",
		StatusCallback: e.app.url("/twilio/video/status"), UnusedRoomTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e.app.waitHit("room-ended", videoEvent("room-ended", room.SID))
}

func TestEndRoomDisconnectsEveryoneFirst(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	room, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-E",
		StatusCallback: e.app.url("/twilio/video/status"), UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"dr-lee", "pat-1"} {
		if _, err := e.ctl.Join(ctx, "visit-E", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.api.EndRoom(ctx, room.SID); err != nil {
		t.Fatalf("EndRoom: %v", err)
	}
	ended := e.app.waitHit("room-ended", videoEvent("room-ended", room.SID))
	gone := e.app.all(videoEvent("participant-disconnected", room.SID))
	if len(gone) != 2 {
		t.Fatalf("got %d participant-disconnected before room-ended; want 2", len(gone))
	}
	for _, h := range gone {
		if seq(t, h) > seq(t, ended) {
			t.Errorf("participant-disconnected %s after room-ended", h.Form.Get("ParticipantIdentity"))
		}
	}
}

// bridge is the interpreter TwiML: navigate the IVR, then join the room.
func bridge(digits, room, identity string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><Response><Play digits="` + digits + `"></Play>` +
		`<Connect><Room participantIdentity="` + identity + `">` + room + `</Room></Connect></Response>`
}

func TestInterpreterCallIsBridgedIntoRoom(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	room, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-V-1",
		StatusCallback: e.app.url("/twilio/video/status?visit=V-1"), UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.app.answer("/twilio/voice/bridge", func(url.Values) string { return bridge("ww1ww4#", "visit-V-1", "interpreter-V-1") })

	call, err := e.api.CreateCall(ctx, twilioapi.CreateCallParams{
		To: "+15551230003", URL: e.app.url("/twilio/voice/bridge?visit=V-1"),
		StatusCallback:       e.app.url("/twilio/voice/status?visit=V-1"),
		StatusCallbackEvents: strings.Fields(allEvents), Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("CreateCall: %v", err)
	}
	if !strings.HasPrefix(call.SID, "CA") || call.Status != "queued" {
		t.Errorf("CreateCall = %+v; want a queued CA… call", call)
	}

	for i, status := range []string{"initiated", "ringing", "in-progress"} {
		h := e.app.waitHit(status, callStatus(status, call.SID))
		if seq(t, h) != i || h.Form.Get("CallbackSource") != "call-progress-events" ||
			h.Form.Get("Direction") != "outbound-api" || h.Form.Get("To") != "+15551230003" || h.Form.Get("From") != ourNumber {
			t.Errorf("%s callback = %v; want SequenceNumber %d and the call's parameters", status, h.Form, i)
		}
		if _, err := time.Parse("Mon, 02 Jan 2006 15:04:05 -0700", h.Form.Get("Timestamp")); err != nil {
			t.Errorf("%s Timestamp: %v", status, err)
		}
	}
	fetch := e.app.waitHit("TwiML fetch", func(h hit) bool { return h.Path == "/twilio/voice/bridge" })
	if fetch.Method != http.MethodPost || fetch.Query.Get("visit") != "V-1" || fetch.Form.Get("CallSid") != call.SID ||
		fetch.Form.Get("CallStatus") != "in-progress" {
		t.Errorf("TwiML fetch = %s %v %v; want a POST for the call, in-progress", fetch.Method, fetch.Query, fetch.Form)
	}
	play := e.waitEvent("Play", verb(call.SID, "Play"))
	if play.Params.Get("digits") != "ww1ww4#" {
		t.Errorf("Play digits = %q; want ww1ww4#", play.Params.Get("digits"))
	}
	conn := e.app.waitHit("interpreter connected", videoEvent("participant-connected", room.SID))
	if conn.Form.Get("ParticipantIdentity") != "interpreter-V-1" || conn.Query.Get("visit") != "V-1" {
		t.Errorf("participant-connected = %v; want identity interpreter-V-1", conn.Form)
	}
	if len(e.app.all(func(h hit) bool { return videoEvent("track-added", room.SID)(h) && h.Form.Get("TrackKind") == "video" })) != 0 {
		t.Error("a phone participant published a video track")
	}

	if err := e.api.HangUp(ctx, call.SID); err != nil {
		t.Fatalf("HangUp: %v", err)
	}
	left := e.app.waitHit("interpreter disconnected", videoEvent("participant-disconnected", room.SID))
	if left.Form.Get("ParticipantSid") != conn.Form.Get("ParticipantSid") {
		t.Errorf("participant-disconnected %v; want %s", left.Form, conn.Form.Get("ParticipantSid"))
	}
	done := e.app.waitHit("completed", callStatus("completed", call.SID))
	if done.Form.Get("CallDuration") == "" || done.Form.Get("Duration") == "" || done.Form.Get("SipResponseCode") != "200" {
		t.Errorf("completed callback = %v; want CallDuration, Duration, SipResponseCode 200", done.Form)
	}
	if err := e.api.HangUp(ctx, call.SID); err != nil {
		t.Errorf("HangUp(ended call) = %v; want nil", err)
	}
	if err := e.api.UpdateCallTwiml(ctx, call.SID, "<Response/>"); twilioapi.Code(err) != 21220 || !twilioapi.Permanent(err) {
		t.Errorf("UpdateCallTwiml(ended call) = %v; want permanent 21220", err)
	}

	// The inspection API shows it all, unmasked.
	calls, err := e.ctl.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 || calls[0].To != "+15551230003" || calls[0].Status != "completed" ||
		!strings.Contains(strings.Join(calls[0].Log, "\n"), "ww1ww4#") {
		t.Errorf("GET /calls = %+v; want the call with its number, status and log", calls)
	}
}

func TestConnectToMissingRoomGoesOn(t *testing.T) {
	e := newEnv(t)
	call, err := e.api.CreateCall(e.ctx(), twilioapi.CreateCallParams{
		To:             "+15551230003",
		Twiml:          `<Response><Connect><Room participantIdentity="interpreter-V-9">visit-V-9</Room></Connect><Say>Sorry</Say></Response>`,
		StatusCallback: e.app.url("/twilio/voice/status"),
	})
	if err != nil {
		t.Fatal(err)
	}
	room := e.waitEvent("Room", verb(call.SID, "Room"))
	if !strings.HasPrefix(room.Params.Get("result"), "failed") {
		t.Errorf("<Room> result = %q; want failed", room.Params.Get("result"))
	}
	e.waitEvent("Say after the failed Connect", verb(call.SID, "Say"))
	e.app.waitHit("completed", callStatus("completed", call.SID))
	if n := len(e.app.all(func(h hit) bool { return h.Path == "/twilio/voice/status" })); n != 1 {
		t.Errorf("got %d status callbacks; want only completed (no events requested)", n)
	}
}

func TestRoomEndReleasesBridgedCall(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	room, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-R",
		StatusCallback: e.app.url("/twilio/video/status"), UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	call, err := e.api.CreateCall(ctx, twilioapi.CreateCallParams{To: "+15551230003",
		Twiml: bridge("1", "visit-R", "interpreter-R"), StatusCallback: e.app.url("/twilio/voice/status")})
	if err != nil {
		t.Fatal(err)
	}
	e.app.waitHit("connected", videoEvent("participant-connected", room.SID))
	if err := e.api.EndRoom(ctx, room.SID); err != nil {
		t.Fatal(err)
	}
	e.app.waitHit("disconnected", videoEvent("participant-disconnected", room.SID))
	e.app.waitHit("room-ended", videoEvent("room-ended", room.SID))
	e.app.waitHit("call completed", callStatus("completed", call.SID))
}

func TestUpdateCallTwimlRedirectsLiveCall(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	call, err := e.api.CreateCall(ctx, twilioapi.CreateCallParams{To: "+15551230003",
		Twiml: `<Response><Pause length="600"/></Response>`, StatusCallback: e.app.url("/twilio/voice/status")})
	if err != nil {
		t.Fatal(err)
	}
	e.waitEvent("Pause", verb(call.SID, "Pause"))
	if err := e.api.UpdateCallTwiml(ctx, call.SID, `<Response><Say>Bye</Say><Hangup/></Response>`); err != nil {
		t.Fatalf("UpdateCallTwiml: %v", err)
	}
	e.waitEvent("Hangup", verb(call.SID, "Hangup"))
	e.app.waitHit("completed", callStatus("completed", call.SID))
}

func TestCallOutcomes(t *testing.T) {
	tests := []struct {
		to, amd    string
		want       string // terminal CallStatus
		answeredBy string
		ringing    bool
		sip        string
	}{
		{to: "+15005550001", want: "busy", sip: "486"},
		{to: "+15005550002", want: "no-answer", ringing: true, sip: "487"},
		{to: "+15005550003", want: "failed", sip: "404"},
		{to: "+15005550004", amd: "Enable", want: "completed", answeredBy: "machine_start", ringing: true, sip: "200"},
		{to: "+15551230009", amd: "DetectMessageEnd", want: "completed", answeredBy: "human", ringing: true, sip: "200"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			call, err := e.api.CreateCall(e.ctx(), twilioapi.CreateCallParams{
				To: tt.to, Twiml: `<Response><Say>Hello</Say></Response>`, MachineDetection: tt.amd, Timeout: 2 * time.Second,
				StatusCallback: e.app.url("/twilio/voice/status"), StatusCallbackEvents: strings.Fields(allEvents),
			})
			if err != nil {
				t.Fatal(err)
			}
			end := e.app.waitHit(tt.want, callStatus(tt.want, call.SID))
			if end.Form.Get("SipResponseCode") != tt.sip {
				t.Errorf("SipResponseCode = %q; want %s", end.Form.Get("SipResponseCode"), tt.sip)
			}
			if got := end.Form.Get("AnsweredBy"); got != tt.answeredBy {
				t.Errorf("AnsweredBy = %q; want %q", got, tt.answeredBy)
			}
			rang := len(e.app.all(callStatus("ringing", call.SID))) == 1
			if rang != tt.ringing {
				t.Errorf("ringing callback sent = %v; want %v", rang, tt.ringing)
			}
		})
	}
}

func TestBusyOnceThenAnswers(t *testing.T) {
	e := newEnv(t)
	var got []string
	for range 2 {
		call, err := e.api.CreateCall(e.ctx(), twilioapi.CreateCallParams{To: "+15005550009",
			Twiml: `<Response><Hangup/></Response>`, StatusCallback: e.app.url("/twilio/voice/status")})
		if err != nil {
			t.Fatal(err)
		}
		h := e.app.waitHit("terminal", func(h hit) bool { return h.Form.Get("CallSid") == call.SID })
		got = append(got, h.Form.Get("CallStatus"))
	}
	if !slices.Equal(got, []string{"busy", "completed"}) {
		t.Errorf("two calls to +15005550009 ended %v; want [busy completed]", got)
	}
}

func TestSMSOutcomes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		to       string
		statuses []string
		code     string
	}{
		{"+15551230002", []string{"queued", "sent", "delivered"}, ""},
		{"+15005550010", []string{"queued", "sent", "undelivered"}, "30003"},
		{"+15005550011", []string{"queued", "sent", "undelivered"}, "30005"},
		{"+15005550012", []string{"queued", "failed"}, "30008"},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			msg, err := e.api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: tt.to, Body: "Your visit starts soon",
				StatusCallback: e.app.url("/twilio/sms/status?visit=V-1")})
			if err != nil {
				t.Fatalf("SendSMS: %v", err)
			}
			if !strings.HasPrefix(msg.SID, "SM") || msg.Status != "queued" {
				t.Errorf("SendSMS = %+v; want a queued SM… message", msg)
			}
			last := tt.statuses[len(tt.statuses)-1]
			end := e.app.waitHit(last, func(h hit) bool { return h.Form.Get("MessageSid") == msg.SID && h.Form.Get("MessageStatus") == last })
			if end.Form.Get("ErrorCode") != tt.code || end.Query.Get("visit") != "V-1" {
				t.Errorf("%s callback = %v; want ErrorCode %q", last, end.Form, tt.code)
			}
			var got []string
			for _, h := range e.app.all(func(h hit) bool { return h.Form.Get("MessageSid") == msg.SID }) {
				got = append(got, h.Form.Get("MessageStatus"))
			}
			if !slices.Equal(got, tt.statuses) {
				t.Errorf("status callbacks %v; want %v", got, tt.statuses)
			}
		})
	}
}

func TestSMSRejected(t *testing.T) {
	e := newEnv(t)
	for to, code := range map[string]int{"+15005550001": 21211, "+15005550004": 21610, "+15005550009": 21614, "5551234": 21211} {
		_, err := e.api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: to, Body: "hi"})
		if twilioapi.Code(err) != code || !twilioapi.Permanent(err) {
			t.Errorf("SendSMS(%s) error = %v; want permanent %d", to, err, code)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(to, "+")) {
			t.Errorf("SendSMS error %q shows the number", err)
		}
	}
}

func TestIncomingCallGathersPIN(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	room, err := e.api.CreateRoom(ctx, twilioapi.CreateRoomParams{UniqueName: "visit-V-2",
		StatusCallback: e.app.url("/twilio/video/status"), UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.app.answer("/twilio/voice/incoming", func(url.Values) string {
		return `<Response><Gather numDigits="6" action="/twilio/voice/pin?attempt=1"><Say>Enter your PIN</Say></Gather><Say>Goodbye</Say></Response>`
	})
	e.app.answer("/twilio/voice/pin", func(f url.Values) string {
		if f.Get("Digits") != "482913" {
			return `<Response><Hangup/></Response>`
		}
		return `<Response><Connect><Room participantIdentity="pat-2">visit-V-2</Room></Connect></Response>`
	})

	in, err := e.ctl.IncomingCall(ctx, "+15551230002")
	if err != nil {
		t.Fatal(err)
	}
	sid := in.SID
	incoming := e.app.waitHit("incoming webhook", func(h hit) bool { return h.Path == "/twilio/voice/incoming" })
	if incoming.Form.Get("CallSid") != sid || incoming.Form.Get("Direction") != "inbound" ||
		incoming.Form.Get("CallStatus") != "ringing" || incoming.Form.Get("To") != ourNumber || incoming.Form.Get("From") != "+15551230002" {
		t.Errorf("incoming webhook = %v; want the inbound call, ringing", incoming.Form)
	}
	if _, err := e.ctl.Digits(ctx, sid, "482913#"); err != nil {
		t.Fatal(err)
	}

	pin := e.app.waitHit("PIN", func(h hit) bool { return h.Path == "/twilio/voice/pin" })
	if pin.Form.Get("Digits") != "482913" || pin.Query.Get("attempt") != "1" || pin.Form.Get("CallStatus") != "in-progress" {
		t.Errorf("gather action = %v %v; want Digits 482913, in-progress", pin.Query, pin.Form)
	}
	conn := e.app.waitHit("patient connected", videoEvent("participant-connected", room.SID))
	if conn.Form.Get("ParticipantIdentity") != "pat-2" {
		t.Errorf("participant-connected identity = %q; want pat-2", conn.Form.Get("ParticipantIdentity"))
	}
	if err := e.api.HangUp(ctx, sid); err != nil {
		t.Fatal(err)
	}
	e.app.waitHit("participant-disconnected", videoEvent("participant-disconnected", room.SID))
	done := e.app.waitHit("completed", callStatus("completed", sid))
	if done.Form.Get("Direction") != "inbound" {
		t.Errorf("completed = %v; want Direction inbound", done.Form)
	}
}

func TestGatherWithoutInputFallsThrough(t *testing.T) {
	e := newEnv(t)
	e.app.answer("/twilio/voice/incoming", func(url.Values) string {
		return `<Response><Gather numDigits="6" timeout="1"><Say>Enter your PIN</Say></Gather><Say>Goodbye</Say></Response>`
	})
	in, err := e.ctl.IncomingCall(e.ctx(), "+15551230002")
	if err != nil {
		t.Fatal(err)
	}
	sid := in.SID
	g := e.waitEvent("gather without input", func(ev sandbox.Event) bool {
		return verb(sid, "Gather")(ev) && ev.Params.Get("result") == "no input"
	})
	_ = g
	e.waitEvent("Goodbye", func(ev sandbox.Event) bool { return verb(sid, "Say")(ev) && ev.Params.Get("text") == "Goodbye" })
	e.app.waitHit("completed", callStatus("completed", sid))
}

func TestIncomingSMS(t *testing.T) {
	e := newEnv(t)
	e.app.answer("/twilio/sms/incoming", func(f url.Values) string {
		return `<Response><Message>Thanks, we got it.</Message></Response>`
	})
	out, err := e.ctl.IncomingSMS(e.ctx(), "+15551230002", "Running 5 minutes late")
	if err != nil {
		t.Fatal(err)
	}
	h := e.app.waitHit("incoming sms", func(h hit) bool { return h.Path == "/twilio/sms/incoming" })
	if h.Form.Get("Body") != "Running 5 minutes late" || h.Form.Get("From") != "+15551230002" || !strings.HasPrefix(h.Form.Get("MessageSid"), "SM") {
		t.Errorf("incoming SMS webhook = %v", h.Form)
	}
	if out.WebhookStatus != 200 || len(out.Replies) != 1 || out.Replies[0].Body != "Thanks, we got it." ||
		out.Replies[0].Status != "delivered" || out.OptOutType != "" || out.TwilioReply != nil {
		t.Errorf("POST /messages/incoming = %+v; want status 200, the reply delivered, no keyword", out)
	}
	msgs, err := e.ctl.Messages(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Direction != "inbound" || msgs[1].Direction != "outbound-reply" {
		t.Errorf("GET /messages = %+v; want the inbound SMS and the reply", msgs)
	}
}

func TestRESTAuth(t *testing.T) {
	e := newEnv(t, func(o *sandbox.Options) { o.APIKeySID, o.APIKeySecret = "SK0123456789abcdef0123456789abcdef", "secret" })
	path := "/2010-04-01/Accounts/" + testAccount + "/Calls/CA0123456789abcdef0123456789abcdef.json"
	for _, tt := range []struct {
		user, pass, path string
		want             int
	}{
		{"", "", path, 401},
		{testAccount, "wrong", path, 401},
		{testAccount, testToken, path, 404},
		{"SK0123456789abcdef0123456789abcdef", "secret", path, 404},
		{testAccount, testToken, "/2010-04-01/Accounts/AC99999999999999999999999999999999/Calls.json", 404},
	} {
		if got, body := e.restForm(http.MethodGet, tt.path, nil, tt.user, tt.pass); got != tt.want {
			t.Errorf("GET %s as %q = %d %s; want %d", tt.path, tt.user, got, body, tt.want)
		}
	}
}

func TestCloseStopsEverything(t *testing.T) {
	e := newEnv(t)
	_, err := e.api.CreateCall(e.ctx(), twilioapi.CreateCallParams{To: "+15551230003",
		Twiml: `<Response><Pause length="600"/></Response>`})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = e.api.CreateRoom(e.ctx(), twilioapi.CreateRoomParams{UniqueName: "x"})
	e.emu.Close() // must return although a call is pausing and a room timer is armed
	if _, err := e.ctl.Calls(context.Background()); sandbox.StatusCode(err) != http.StatusServiceUnavailable {
		t.Errorf("GET /calls after Close: %v; want 503", err)
	}
}

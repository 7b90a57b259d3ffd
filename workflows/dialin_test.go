package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
)

// dial places an inbound call from number and presses digits.
func dial(e *testenv.Env, from, digits string) string {
	e.T.Helper()
	ctx := context.Background()
	call, err := e.Sandbox.Client.IncomingCall(ctx, from)
	if err != nil {
		e.T.Fatalf("sandbox incoming call: %v", err)
	}
	if digits != "" {
		if _, err := e.Sandbox.Client.Digits(ctx, call.SID, digits); err != nil {
			e.T.Fatalf("sandbox digits: %v", err)
		}
	}
	return call.SID
}

// waitSay awaits a <Say> on call sid containing text.
func waitSay(e *testenv.Env, sid, text string) {
	e.T.Helper()
	e.WaitEvent("<Say> "+text, func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Say" && ev.SID == sid && strings.Contains(ev.Params.Get("text"), text)
	})
}

func TestDialIn(t *testing.T) {
	// Twilio creates no room until the caller is holding, so the test sees
	// the hold whichever of the caller and the room:create job is faster.
	roomsOpen := make(chan struct{})
	var openRooms sync.Once
	t.Cleanup(func() { openRooms.Do(func() { close(roomsOpen) }) })
	e := newLegEnv(t, testenv.WrapSandbox(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v1/Rooms") {
				<-roomsOpen
			}
			h.ServeHTTP(w, r)
		})
	}))
	open := createAt(e, "V-din", time.Now().Add(10*time.Minute))
	lateAt := time.Now().Add(3 * time.Hour).Truncate(time.Minute)
	late := createAt(e, "V-late", lateAt)

	// The right PIN: the room is opened while the caller holds, then the
	// caller is bridged in as the patient's phone leg.
	sid := dial(e, "+15557650001", open.DialIn.PIN+"#")
	waitSay(e, sid, "Please hold while we open your visit")
	openRooms.Do(func() { close(roomsOpen) })
	e.WaitEvent("the caller in the room", testenv.ParticipantConnected("dialin-V-din"))
	v := e.WaitVisit("V-din", "patient waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
	if len(v.Participants) != 1 || v.Participants[0].Role != "patient" || v.Participants[0].Identity != "dialin-V-din" ||
		v.Participants[0].Via != "phone" {
		t.Fatalf("participants = %+v; want the dial-in leg as patient, via phone", v.Participants)
	}
	if !testenv.TimelineHas(v, "dial-in", "PIN accepted") {
		t.Fatalf("timeline %+v lacks the dial-in entry", v.Timeline)
	}

	// Three wrong PINs: asked three times, then a polite goodbye. The
	// pound key ends each entry and is never left over for the next prompt.
	wrong := open.DialIn.PIN
	for wrong == open.DialIn.PIN || wrong == late.DialIn.PIN {
		wrong = fmt.Sprintf("%09d", time.Now().UnixNano()%1_000_000_000)
	}
	const caller = "+15557650002"
	for call := 1; call <= 2; call++ {
		sid := dial(e, caller, strings.Repeat(wrong+"#", 3))
		waitSay(e, sid, "could not find an open visit for that PIN. The time of your visit is in your appointment message")
		e.WaitEvent("call "+sid+" ended", testenv.CallCompleted(sid))
		if n := e.Sandbox.CountEvents(sid, sandbox.KindVoiceTwiML, "gather"); n != 3 {
			t.Fatalf("call %d: %d PIN submissions; want 3 before the goodbye", call, n)
		}
		for _, ev := range events(e, sid, sandbox.KindVoiceTwiML, "gather") {
			if ev.Params.Get("Digits") != wrong {
				t.Fatalf("call %d submitted Digits %q; want %q each time", call, ev.Params.Get("Digits"), wrong)
			}
		}
		if n := e.Sandbox.CountEvents(sid, sandbox.KindVoiceVerb, "Hangup"); n != 1 {
			t.Fatalf("call %d: %d <Hangup>; want 1", call, n)
		}
	}
	// Six failures from that caller: it holds before the prompt and gets
	// one try, but is still asked (its right PIN must get through).
	sid = dial(e, caller, "")
	waitSay(e, sid, "Please hold")
	e.WaitEvent("the held caller's PIN prompt", testenv.Verb(sid, "Gather"))
	if n := e.Sandbox.CountEvents(sid, sandbox.KindVoiceVerb, "Pause"); n != 1 {
		t.Fatalf("limited caller paused %d times before the prompt; want 1", n)
	}
	// Another caller is asked at once.
	sid = dial(e, "+15557650004", "")
	e.WaitEvent("PIN prompt", testenv.Verb(sid, "Gather"))
	if n := e.Sandbox.CountEvents(sid, sandbox.KindVoiceVerb, "Pause"); n != 0 {
		t.Fatalf("a new caller paused %d times; want 0", n)
	}
	for _, k := range e.AllKeys("*") {
		if strings.Contains(k, "5557650002") || strings.Contains(k, "5551230002") {
			t.Fatalf("Redis key %s holds a phone number", k)
		}
	}

	// A visit not open yet: its local time, to its patient's phone only.
	sid = dial(e, testenv.PatientPhone, late.DialIn.PIN+"#")
	ny, _ := time.LoadLocation("America/New_York")
	waitSay(e, sid, "Your visit is scheduled for "+lateAt.In(ny).Format("Monday, January 2 at 3:04 PM MST"))
	e.WaitEvent("call "+sid+" ended", testenv.CallCompleted(sid))
	if v := e.Visit("V-late"); len(v.Participants) != 0 {
		t.Fatalf("V-late participants = %+v; want none", v.Participants)
	}
}

// events lists the emulator's events of kind and name on call sid.
func events(e *testenv.Env, sid, kind, name string) []sandbox.Event {
	e.T.Helper()
	all, err := e.Sandbox.Client.EventsFor(context.Background(), sid)
	if err != nil {
		e.T.Fatal(err)
	}
	var out []sandbox.Event
	for _, ev := range all {
		if ev.Kind == kind && ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

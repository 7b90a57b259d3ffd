package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// TestInterpreterBusyOnceThenBridgedAndHungUpOnEnd: the first attempt is
// busy, the retry is answered, the IVR path is played, the call is bridged
// into the room as interpreter-<id>; a second request meanwhile is 409;
// ending the visit hangs the call up and ends the room.
func TestInterpreterBusyOnceThenBridgedAndHungUpOnEnd(t *testing.T) {
	e := newLegEnv(t)
	createAt(e, "V-int", time.Now().Add(10*time.Minute))

	var v handlers.VisitView
	if code := e.API(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "busy-once"}, &v); code != http.StatusAccepted {
		t.Fatalf("POST interpreter = %d; want 202", code)
	}
	if v.Interpreter == nil || v.Interpreter.State != "requested" {
		t.Fatalf("interpreter after request = %+v; want requested", v.Interpreter)
	}
	var errBody testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "busy-once"}, &errBody); code != http.StatusConflict {
		t.Fatalf("second POST interpreter while live = %d; want 409", code)
	}
	if code := e.API(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "nope"}, &errBody); code != http.StatusBadRequest && code != http.StatusConflict {
		t.Fatalf("POST interpreter with an unknown line = %d; want 400", code)
	}

	e.WaitEvent("the interpreter joining the room", testenv.ParticipantConnected("interpreter-V-int"))
	v = e.WaitVisit("V-int", "interpreter bridged", func(v handlers.VisitView) bool {
		return v.Interpreter != nil && v.Interpreter.State == "bridged"
	})
	if v.Interpreter.Attempts != 2 || !testenv.TimelineHas(v, "interpreter-retry", "busy") {
		t.Fatalf("interpreter = %+v, timeline %+v; want bridged on attempt 2 after a busy attempt", v.Interpreter, v.Timeline)
	}
	calls := e.CallsTo(sandbox.NumberBusyOnce)
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
		e.RunTask(workflows.TypeInterpreterDial, workflows.Payload{VisitID: "V-int", Request: 1, Attempt: attempt})
	}
	if n := len(e.CallsTo(sandbox.NumberBusyOnce)); n != 2 {
		t.Fatalf("%d calls after re-running the dial jobs; want still 2", n)
	}
	play := e.WaitEvent("the IVR digits", testenv.Verb(calls[1].SID, "Play"))
	if got := play.Params.Get("digits"); got != "1#" {
		t.Fatalf("<Play digits> = %q; want the line's IVR path 1#", got)
	}
	for _, ev := range e.Sandbox.Emulator.Events() {
		if ev.SID == calls[1].SID && ev.Params.Get("AnsweredBy") != "" {
			t.Fatalf("%s %s carries AnsweredBy %q; want no machine detection toward an IVR line", ev.Kind, ev.Name, ev.Params.Get("AnsweredBy"))
		}
	}

	if code := e.API(http.MethodPost, "/v1/visits/V-int/end", nil, &v); code != http.StatusOK {
		t.Fatalf("POST end = %d; want 200", code)
	}
	e.WaitEvent("the interpreter call hung up", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceStatus && ev.SID == calls[1].SID && ev.Name == "completed"
	})
	e.WaitEvent("the room ended", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "room-ended" && ev.Params.Get("RoomName") == "visit-V-int"
	})
	v = e.WaitVisit("V-int", "leg ended", func(v handlers.VisitView) bool { return v.Interpreter.State == "ended" })
	if v.State != "no_show" {
		t.Fatalf("state after /end with only the interpreter = %s; want no_show", v.State)
	}
	if code := e.API(http.MethodPost, "/v1/visits/V-int/interpreter", map[string]string{"line": "voyce-es"}, &errBody); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST interpreter on an ended visit = %d; want 422", code)
	}
}

// An interpreter service answers with its IVR menu, which Twilio's
// answering-machine detection calls a machine: the line is dialled without
// it, so the menu is navigated and the call bridged at the first attempt,
// and the one-second pauses of the path are played as <Play> knows them.
func TestInterpreterLineAnsweredByAnIVRIsBridged(t *testing.T) {
	e := newLegEnv(t)
	createAt(e, "V-ivr", time.Now().Add(10*time.Minute))
	if code := e.API(http.MethodPost, "/v1/visits/V-ivr/interpreter", map[string]string{"line": "ivr"}, nil); code != http.StatusAccepted {
		t.Fatalf("POST interpreter = %d; want 202", code)
	}
	e.WaitEvent("the interpreter joining the room", testenv.ParticipantConnected("interpreter-V-ivr"))
	v := e.WaitVisit("V-ivr", "interpreter bridged", func(v handlers.VisitView) bool {
		return v.Interpreter != nil && v.Interpreter.State == "bridged"
	})
	if v.Interpreter.Attempts != 1 {
		t.Fatalf("interpreter = %+v; want bridged at the first attempt", v.Interpreter)
	}
	calls := e.CallsTo(sandbox.NumberIVR)
	play := e.WaitEvent("the IVR digits", testenv.Verb(calls[0].SID, "Play"))
	if got := play.Params.Get("digits"); got != "ww2ww1#" || play.Params.Get("result") != "" {
		t.Fatalf("<Play digits=%q> %s; want ww2ww1# played (the configured W2W1#)", got, play.Params.Get("result"))
	}
}

// TestInterpreterRetriesExhausted: a line that never answers is dialled
// max_attempts times, then the leg fails and the provider gets an SMS.
func TestInterpreterRetriesExhausted(t *testing.T) {
	e := newLegEnv(t)
	cases := []struct{ line, number, outcome string }{
		{"busy", sandbox.NumberBusy, "busy"},
		{"no-answer", sandbox.NumberNoAnswer, "no-answer"},
		{"failed", sandbox.NumberFailed, "failed"},
		{"machine", sandbox.NumberMachine, "machine"},
	}
	for i, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			e.T = t
			id := fmt.Sprintf("V-x%d", i)
			createAt(e, id, time.Now().Add(10*time.Minute))
			if code := e.API(http.MethodPost, "/v1/visits/"+id+"/interpreter", map[string]string{"line": c.line}, nil); code != http.StatusAccepted {
				t.Fatalf("POST interpreter = %d; want 202", code)
			}
			v := e.WaitVisit(id, "leg failed and provider told", func(v handlers.VisitView) bool {
				return v.Interpreter.State == "failed" && (testenv.TimelineHas(v, "sms-accepted", "interpreter-failed:") || // recorded from Twilio's answer,
					testenv.TimelineHas(v, "sms-confirmed", "interpreter-failed:")) // or its status callback, whichever came first
			})
			if v.Interpreter.Attempts != 3 || v.Interpreter.LastOutcome != c.outcome {
				t.Fatalf("interpreter = %+v; want 3 attempts, last %s", v.Interpreter, c.outcome)
			}
			if calls := e.CallsTo(c.number); len(calls) != 3 {
				t.Fatalf("%d calls placed; want 3", len(calls))
			}
			if c.line == "machine" {
				for _, ev := range e.Sandbox.Emulator.Events() {
					if ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Play" && ev.Params.Get("digits") == "9#" {
						t.Fatal("the IVR path was played to an answering machine")
					}
				}
			}
		})
	}
	e.T = t
	msgs := e.SMSTo("+15551230001")
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
	e := newLegEnv(t)
	createAt(e, "V-del", time.Now().Add(10*time.Minute))

	bridged := func(n int) string {
		t.Helper()
		if code := e.API(http.MethodPost, "/v1/visits/V-del/interpreter", map[string]string{"line": "voyce-es"}, nil); code != http.StatusAccepted {
			t.Fatalf("POST interpreter #%d = %d; want 202", n, code)
		}
		v := e.WaitVisit("V-del", "bridged", func(v handlers.VisitView) bool {
			return v.Interpreter.State == "bridged" && len(e.CallsTo(interpreterPhone)) == n
		})
		return v.Interpreter.CallSID
	}
	hungUp := func(sid string) {
		t.Helper()
		e.WaitEvent("call "+sid+" completed", func(ev sandbox.Event) bool {
			return ev.Kind == sandbox.KindVoiceStatus && ev.SID == sid && ev.Name == "completed"
		})
		v := e.WaitVisit("V-del", "leg ended", func(v handlers.VisitView) bool { return v.Interpreter.State == "ended" })
		if v.Interpreter.CallSID != sid {
			t.Fatalf("leg call_sid = %s; want %s", v.Interpreter.CallSID, sid)
		}
	}

	first := bridged(1)
	play := e.WaitEvent("the IVR digits", testenv.Verb(first, "Play"))
	if got := play.Params.Get("digits"); got != "ww2ww1234#" {
		t.Fatalf("<Play digits> = %q; want ww2ww1234#", got)
	}
	room := e.WaitEvent("the bridge", testenv.Verb(first, "Room"))
	if room.Params.Get("participantIdentity") != "interpreter-V-del" || room.Params.Get("text") != "visit-V-del" {
		t.Fatalf("<Room> = %v; want participantIdentity interpreter-V-del into visit-V-del", room.Params)
	}
	if v := e.Visit("V-del"); v.State != "scheduled" {
		t.Fatalf("state with only the interpreter in the room = %s; want scheduled (interpreters never count)", v.State)
	}
	if code := e.API(http.MethodDelete, "/v1/visits/V-del/interpreter", nil, nil); code != http.StatusOK {
		t.Fatalf("DELETE interpreter = %d; want 200", code)
	}
	hungUp(first)

	second := bridged(2)
	if code := e.API(http.MethodPost, "/v1/visits/V-del/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("POST cancel = %d; want 200", code)
	}
	hungUp(second)
	e.WaitEvent("the cancelled visit's room ended", func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "room-ended" && ev.Params.Get("RoomName") == "visit-V-del"
	})
	if v := e.Visit("V-del"); v.State != "cancelled" {
		t.Fatalf("state after cancel and room end = %s; want cancelled", v.State)
	}
}

// TestInterpreterWatchdogRecoversALostClaim: a worker that claimed an
// attempt and died before placing the call leaves the leg "dialing" without
// a call; the check job fails that attempt and the next one is placed.
func TestInterpreterWatchdogRecoversALostClaim(t *testing.T) {
	e := newLegEnv(t)
	createAt(e, "V-w", time.Now().Add(10*time.Minute))
	// What the dying worker committed: the claim of attempt 1, no call.
	if _, err := e.Store.Update(context.Background(), "V-w", "", func(v *visit.Visit) error {
		v.Interpreter = &visit.InterpreterLeg{Line: "voyce-es", State: visit.LegDialing, Attempts: 1, Request: 1, RequestedAt: time.Now()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Its dial job, re-delivered, must not place a call it cannot know about.
	e.RunTask(workflows.TypeInterpreterDial, workflows.Payload{VisitID: "V-w", Request: 1, Attempt: 1})
	if n := len(e.CallsTo(interpreterPhone)); n != 0 {
		t.Fatalf("a re-delivered claimed dial job placed %d calls; want 0", n)
	}
	e.RunTask(workflows.TypeInterpreterCheck, workflows.Payload{VisitID: "V-w", Request: 1, Attempt: 1})
	v := e.WaitVisit("V-w", "bridged on attempt 2", func(v handlers.VisitView) bool {
		return v.Interpreter.State == "bridged"
	})
	if v.Interpreter.Attempts != 2 || v.Interpreter.LastOutcome != "not placed" || len(e.CallsTo(interpreterPhone)) != 1 {
		t.Fatalf("interpreter = %+v with %d calls; want one call, on attempt 2 after 'not placed'", v.Interpreter, len(e.CallsTo(interpreterPhone)))
	}
}

// A 500 after Twilio placed the call is ambiguous: the attempt is not
// dialled again (that would ring the line twice at once); the placed call's
// callbacks carry the attempt, and the leg adopts it and is bridged.
func TestInterpreterDialAmbiguous500IsNotDialledTwice(t *testing.T) {
	// No reminders: the injected fault must meet the call, not a
	// starting-soon SMS sent at the same moment.
	e := newLegEnv(t, testenv.Configure(func(c *config.Config) { c.Visits.ReminderOffsets = nil }))
	createAt(e, "V-amb", time.Now().Add(10*time.Minute))
	// The room first, so that the fault meets the call.
	e.WaitVisit("V-amb", "its room", func(v handlers.VisitView) bool { return v.Room.SID != "" })
	if _, err := e.Sandbox.Client.SetFaults(context.Background(), sandbox.Faults{FailAfterAccept: 1}); err != nil {
		t.Fatal(err)
	}
	if code := e.API(http.MethodPost, "/v1/visits/V-amb/interpreter", map[string]string{"line": "voyce-es"}, nil); code != http.StatusAccepted {
		t.Fatalf("POST interpreter = %d; want 202", code)
	}
	v := e.WaitVisit("V-amb", "interpreter bridged", func(v handlers.VisitView) bool {
		return v.Interpreter != nil && v.Interpreter.State == "bridged"
	})
	if calls := e.CallsTo(interpreterPhone); len(calls) != 1 || v.Interpreter.Attempts != 1 || v.Interpreter.CallSID != calls[0].SID {
		t.Fatalf("calls %+v, leg %+v; want the one call, adopted by attempt 1", calls, v.Interpreter)
	}
	if !testenv.TimelineHas(v, "interpreter-dial-unknown", "outcome unknown") {
		t.Fatalf("timeline %+v; want the unknown outcome recorded", v.Timeline)
	}
}

// Every Voice URL visitflow hands Twilio carries connection overrides, so
// a TwiML fetch answered 503 (a Redis blip) is retried instead of failing
// the call; the fragment is not signed and the retry validates.
func TestVoiceURLsCarryConnectionOverrides(t *testing.T) {
	var failed atomic.Bool
	e := newLegEnv(t, testenv.Configure(func(cfg *config.Config) {
		app := cfg.HTTP.PublicBaseURL
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/twilio/voice/bridge" && failed.CompareAndSwap(false, true) {
				http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
				return
			}
			proxy(w, r, app)
		}))
		t.Cleanup(front.Close)
		cfg.HTTP.PublicBaseURL = front.URL // what Twilio reaches and signs
	}))
	createAt(e, "V-ov", time.Now().Add(10*time.Minute))
	if code := e.API(http.MethodPost, "/v1/visits/V-ov/interpreter", map[string]string{"line": "voyce-es"}, nil); code != http.StatusAccepted {
		t.Fatalf("POST interpreter = %d; want 202", code)
	}
	v := e.WaitVisit("V-ov", "interpreter bridged", func(v handlers.VisitView) bool {
		return v.Interpreter != nil && v.Interpreter.State == "bridged"
	})
	if v.Interpreter.Attempts != 1 {
		t.Fatalf("interpreter %+v; want bridged at the first attempt (the 503 retried)", v.Interpreter)
	}
	call := e.CallsTo(interpreterPhone)[0]
	if !strings.HasSuffix(call.URL, workflows.VoiceOverrides) || !strings.HasSuffix(call.StatusCallback, workflows.VoiceOverrides) {
		t.Fatalf("call Url %q, StatusCallback %q; want both with %s", call.URL, call.StatusCallback, workflows.VoiceOverrides)
	}
	var tries []int
	for _, ev := range e.Sandbox.Emulator.Events() {
		if ev.SID == call.SID && ev.Kind == sandbox.KindVoiceTwiML {
			tries = append(tries, ev.Status)
		}
	}
	if !slices.Equal(tries, []int{http.StatusServiceUnavailable, http.StatusOK}) {
		t.Fatalf("TwiML fetch answers %v; want 503 then 200 (the signed retry)", tries)
	}
}

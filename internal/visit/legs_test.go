package visit

import (
	"errors"
	"testing"
	"time"
)

// legIn returns a leg of request 1 in state s on attempt 1 (0 when requested).
func legIn(s LegState) *InterpreterLeg {
	l := &InterpreterLeg{Line: "es", State: s, Request: 1, Attempts: 1}
	switch s {
	case LegRequested:
		l.Attempts = 0
	case LegRinging, LegAnswered, LegBridged:
		l.CallSID = "CA1"
	}
	return l
}

// TestLegTransitionTable walks the table in legs.go: every state × event,
// what it allows and what it refuses.
func TestLegTransitionTable(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	type event struct {
		name string
		do   func(l *InterpreterLeg) error
	}
	claim := event{"Claim(1,1)", func(l *InterpreterLeg) error { return l.Claim(1, 1) }}
	giveBack := event{"GiveBack(1,1)", func(l *InterpreterLeg) error { return l.GiveBack(1, 1) }}
	bridge := event{"Bridge", func(l *InterpreterLeg) error { return l.Bridge(t0) }}
	stop := event{"Stop", func(l *InterpreterLeg) error { return l.Stop(t0) }}
	fail := event{"AttemptFailed", func(l *InterpreterLeg) error {
		_, err := l.AttemptFailed("busy", 3, t0.Add(time.Minute), t0)
		return err
	}}
	tests := []struct {
		from LegState
		ev   event
		want LegState // "" means refused, state unchanged
	}{
		{LegRequested, claim, LegDialing},
		{LegRequested, giveBack, ""},
		{LegRequested, bridge, LegBridged},
		{LegRequested, stop, LegEnded},
		{LegRequested, fail, ""},
		{LegDialing, claim, ""},
		{LegDialing, giveBack, LegRequested},
		{LegDialing, bridge, LegBridged},
		{LegDialing, stop, LegEnded},
		{LegDialing, fail, LegRequested},
		{LegRinging, giveBack, ""},
		{LegRinging, fail, LegRequested},
		{LegAnswered, bridge, LegBridged},
		{LegAnswered, fail, LegRequested},
		{LegBridged, bridge, ""},
		{LegBridged, fail, ""},
		{LegBridged, stop, LegEnded},
		{LegEnded, claim, ""},
		{LegEnded, stop, ""},
		{LegEnded, bridge, ""},
		{LegFailed, stop, ""},
		{LegFailed, claim, ""},
	}
	for _, tt := range tests {
		l := legIn(tt.from)
		err := tt.ev.do(l)
		switch {
		case tt.want == "" && (err == nil || !errors.Is(err, errLegRefused)):
			t.Errorf("%s on a %s leg = %v; want refused", tt.ev.name, tt.from, err)
		case tt.want == "" && l.State != tt.from:
			t.Errorf("refused %s moved a %s leg to %s", tt.ev.name, tt.from, l.State)
		case tt.want != "" && err != nil:
			t.Errorf("%s on a %s leg = %v; want → %s", tt.ev.name, tt.from, err, tt.want)
		case tt.want != "" && l.State != tt.want:
			t.Errorf("%s on a %s leg → %s; want %s", tt.ev.name, tt.from, l.State, tt.want)
		}
	}
}

func TestLegClaimOnlyTheNextAttemptOfTheCurrentRequest(t *testing.T) {
	l := legIn(LegRequested)
	if err := l.Claim(1, 2); err == nil {
		t.Fatal("Claim(1, 2) of a leg on attempt 0 = nil; want refused (attempt 1 comes first)")
	}
	if err := l.Claim(2, 1); err == nil {
		t.Fatal("Claim(2, 1) of request 1's leg = nil; want refused (a stale request)")
	}
	if err := l.Claim(1, 1); err != nil || l.Attempts != 1 {
		t.Fatalf("Claim(1, 1) = %v, attempts %d; want nil, 1", err, l.Attempts)
	}
	if err := l.Claim(1, 1); err == nil {
		t.Fatal("a second Claim(1, 1) = nil; want refused: a duplicated dial job must not place a second call")
	}
}

func TestLegAttemptFailedRetriesThenFails(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	l := legIn(LegRequested)
	for attempt := 1; attempt <= 3; attempt++ {
		if err := l.Claim(1, attempt); err != nil {
			t.Fatalf("Claim(1, %d) = %v", attempt, err)
		}
		retry, err := l.AttemptFailed("busy", 3, t0.Add(time.Minute), t0)
		if err != nil || retry != (attempt < 3) {
			t.Fatalf("AttemptFailed after attempt %d = %v, %v; want retry %v", attempt, retry, err, attempt < 3)
		}
	}
	if l.State != LegFailed || l.EndedAt == nil || l.NextAttemptAt != nil || l.LastOutcome != "busy" {
		t.Fatalf("after 3 failed attempts leg = %+v; want failed, ended, no next attempt, last outcome busy", l)
	}
}

func TestLegProgressByCallStatus(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	tests := []struct {
		from        LegState
		status, by  string
		want        CallOutcome
		wantState   LegState
		wantOutcome string
	}{
		{LegDialing, "ringing", "", CallProgressed, LegRinging, ""},
		{LegRinging, "in-progress", "human", CallProgressed, LegAnswered, ""},
		{LegAnswered, "ringing", "", CallNoChange, LegAnswered, ""},
		{LegRinging, "busy", "", CallAttemptFailed, LegRinging, "busy"},
		{LegAnswered, "completed", "machine_start", CallAttemptFailed, LegAnswered, "machine"},
		{LegAnswered, "completed", "human", CallAttemptFailed, LegAnswered, "hung up before bridging"},
		{LegBridged, "completed", "", CallHungUp, LegEnded, ""},
		{LegRequested, "completed", "", CallNoChange, LegRequested, ""},
	}
	for _, tt := range tests {
		l := legIn(tt.from)
		got, outcome := l.Progress(tt.status, tt.by, t0)
		if got != tt.want || l.State != tt.wantState || outcome != tt.wantOutcome {
			t.Errorf("Progress(%s, %q) on a %s leg = %v %q → %s; want %v %q → %s",
				tt.status, tt.by, tt.from, got, outcome, l.State, tt.want, tt.wantOutcome, tt.wantState)
		}
	}
	ended := legIn(LegEnded)
	ended.Progress("completed", "", t0)
	if ended.EndedAt == nil || !ended.EndedAt.Equal(t0) {
		t.Errorf("a terminal status on an ended leg without EndedAt set EndedAt = %v; want %v", ended.EndedAt, t0)
	}
}

func TestLegAdoptsOnlyTheDialledAttemptsCall(t *testing.T) {
	l := legIn(LegDialing)
	if l.AdoptCall("CA9", 2) {
		t.Fatal("AdoptCall for attempt 2 while attempt 1 is dialled = true; want false")
	}
	if !l.AdoptCall("CA9", 1) || l.CallSID != "CA9" {
		t.Fatalf("AdoptCall(CA9, 1) → call %q; want adopted", l.CallSID)
	}
	if l.AdoptCall("CA8", 1) {
		t.Fatal("AdoptCall of a second call for the same attempt = true; want false (the first wins)")
	}
	if hangUp := l.RecordCall(1, 1, "CA8"); hangUp || l.CallSID != "CA9" {
		t.Fatalf("RecordCall after adoption = hang up %v, call %q; want keep CA9, no hang-up", hangUp, l.CallSID)
	}
	l.Stop(time.Now())
	if !l.RecordCall(1, 1, "CA9") {
		t.Fatal("RecordCall on a stopped leg = no hang-up; want the call hung up at once")
	}
}

func TestRequestInterpreterRefusesAFinishedVisitOrALiveLeg(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	v := newVisit()
	if _, err := v.RequestInterpreter("es", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.RequestInterpreter("es", t0); !errors.Is(err, ErrLegLive) {
		t.Fatalf("second RequestInterpreter = %v; want ErrLegLive", err)
	}
	v.Interpreter.Stop(t0)
	leg, err := v.RequestInterpreter("es", t0)
	if err != nil || leg.Request != 2 {
		t.Fatalf("RequestInterpreter after the leg ended = %+v, %v; want request 2", leg, err)
	}
	v.Cancel(t0)
	v.Interpreter.Stop(t0)
	if _, err := v.RequestInterpreter("es", t0); !errors.Is(err, ErrInvalidChange) || err.Error() != "visit: change not allowed in this state: cannot dial an interpreter for a cancelled visit" {
		t.Fatalf("RequestInterpreter on a cancelled visit = %v; want ErrInvalidChange naming the state", err)
	}
}

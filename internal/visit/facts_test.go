package visit

import (
	"math/rand"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func newVisit() *Visit {
	return &Visit{ID: "V-1", Provider: Person{Identity: "dr-lee"}, Patient: Person{Identity: "pat-1"}}
}

// fact is one callback's worth of change, applied through the public methods.
type fact struct {
	name  string
	apply func(v *Visit) bool
}

func connect(sid, who string, min int) fact {
	return fact{sid + " " + who + " connected", func(v *Visit) bool { return v.ParticipantConnected(sid, who, at(min)) }}
}

func disconnect(sid, who string, min int) fact {
	return fact{sid + " " + who + " disconnected", func(v *Visit) bool {
		return v.ParticipantDisconnected(sid, who, at(min), 0)
	}}
}

func roomEnded(min int) fact {
	return fact{"room ended", func(v *Visit) bool { return v.RoomEnded(at(min)) }}
}

func TestStateStepByStep(t *testing.T) {
	steps := []struct {
		f    fact
		want State
	}{
		{connect("PA1", "pat-1", 0), Waiting},
		{connect("PA2", "dr-lee", 2), InProgress},
		{disconnect("PA2", "dr-lee", 5), Waiting},
		{connect("PA3", "dr-lee", 6), InProgress},
		{connect("PA4", "guest-x", 7), InProgress},
		{disconnect("PA1", "pat-1", 10), ProviderWaiting},
		{disconnect("PA3", "dr-lee", 11), Interrupted},
		{disconnect("PA4", "guest-x", 11), Interrupted},
		{roomEnded(16), Completed},
	}
	v := newVisit()
	if got := v.State(); got != Scheduled {
		t.Fatalf("new visit State() = %v; want scheduled", got)
	}
	for _, s := range steps {
		s.f.apply(v)
		if got := v.State(); got != s.want {
			t.Fatalf("after %q State() = %v; want %v", s.f.name, got, s.want)
		}
	}
}

func TestNoShowPaths(t *testing.T) {
	v := newVisit()
	v.ParticipantConnected("PA1", "dr-lee", at(0))
	v.NoShowDeadlinePassed(at(15))
	if got := v.State(); got != NoShow {
		t.Fatalf("provider alone past deadline: State() = %v; want no_show", got)
	}
	v.ParticipantConnected("PA2", "pat-1", at(17))
	if got := v.State(); got != InProgress {
		t.Fatalf("late patient join: State() = %v; want in_progress", got)
	}

	v = newVisit()
	v.ParticipantConnected("PA1", "pat-1", at(0))
	v.ParticipantDisconnected("PA1", "pat-1", at(3), 0)
	v.ParticipantConnected("PA2", "dr-lee", at(4))
	v.RoomEnded(at(20))
	if got := v.State(); got != NoShow {
		t.Fatalf("room ended without provider and patient together: State() = %v; want no_show", got)
	}
}

func TestCancelledIgnoresLaterCallbacks(t *testing.T) {
	v := newVisit()
	if ok, err := v.Cancel(at(-60)); !ok || err != nil {
		t.Fatalf("Cancel() = %v, %v; want true, nil", ok, err)
	}
	v.ParticipantConnected("PA1", "pat-1", at(0))
	v.ParticipantConnected("PA2", "dr-lee", at(0))
	if got := v.State(); got != Cancelled {
		t.Fatalf("after joins on a cancelled visit State() = %v; want cancelled", got)
	}
	if ok, err := v.Cancel(at(1)); ok || err != nil {
		t.Fatalf("second Cancel() = %v, %v; want false, nil", ok, err)
	}
}

func TestCancelCompletedIsInvalid(t *testing.T) {
	v := newVisit()
	v.ParticipantConnected("PA1", "pat-1", at(0))
	v.ParticipantConnected("PA2", "dr-lee", at(1))
	v.RoomEnded(at(30))
	if _, err := v.Cancel(at(31)); err == nil {
		t.Fatal("Cancel() on a completed visit = nil error; want ErrInvalidChange")
	}
}

func TestGuestsAndInterpreterNeverCount(t *testing.T) {
	v := newVisit()
	v.ParticipantConnected("PA1", "guest-abc", at(0))
	v.ParticipantConnected("PA2", v.InterpreterIdentity(), at(0))
	if got := v.State(); got != Scheduled {
		t.Fatalf("only guest and interpreter: State() = %v; want scheduled", got)
	}
	v.ParticipantConnected("PA3", v.DialInIdentity(), at(1))
	if got := v.State(); got != Waiting {
		t.Fatalf("patient's dial-in leg: State() = %v; want waiting", got)
	}
}

// TestOrderIndependence applies every fact of generated visits in random
// orders with duplicates and checks the state and participants match the
// in-order result.
func TestOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < 300; n++ {
		facts := generate(rng)
		want := newVisit()
		for _, f := range facts {
			f.apply(want)
		}
		for k := 0; k < 20; k++ {
			shuffled := append([]fact(nil), facts...)
			for i := 0; i < len(facts)/2; i++ {
				shuffled = append(shuffled, facts[rng.Intn(len(facts))])
			}
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			got := newVisit()
			for _, f := range shuffled {
				f.apply(got)
			}
			if got.State() != want.State() {
				t.Fatalf("shuffled State() = %v; in order %v (facts %v)", got.State(), want.State(), names(shuffled))
			}
			if g, w := len(got.ParticipantList()), len(want.ParticipantList()); g != w {
				t.Fatalf("shuffled has %d participants; in order %d", g, w)
			}
		}
	}
}

// generate makes the callbacks of a plausible visit: people join, drop and
// rejoin with new ParticipantSids; sometimes the room ends.
func generate(rng *rand.Rand) []fact {
	var facts []fact
	sid := 0
	for _, who := range []string{"pat-1", "dr-lee", "guest-1"} {
		min := rng.Intn(10)
		for k := rng.Intn(3); k >= 0; k-- {
			sid++
			s := "PA" + string(rune('a'+sid))
			facts = append(facts, connect(s, who, min))
			min += 1 + rng.Intn(10)
			if rng.Intn(3) > 0 {
				facts = append(facts, disconnect(s, who, min))
				min += rng.Intn(3)
			} else {
				break
			}
		}
	}
	if rng.Intn(2) == 0 {
		facts = append(facts, roomEnded(60))
	}
	return facts
}

func names(fs []fact) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.name
	}
	return out
}

// TestStateChangedRowsAreDerivedInTimeOrder: whatever order a visit's
// callbacks arrived in, the timeline read back starts with the creation row
// and says the same state changes, in time order, each right after the
// entry that caused it; creation and state-changed rows stored by an
// earlier version are replaced, not shown twice.
func TestStateChangedRowsAreDerivedInTimeOrder(t *testing.T) {
	v := newVisit()
	v.CreatedAt, v.ScheduledAt = at(-60), at(0)
	v.Reschedule(at(2)) // the creation row still says the time it was created for
	v.ParticipantConnected("PA1", "pat-1", at(1))
	v.ParticipantConnected("PA2", "dr-lee", at(3))
	v.ParticipantDisconnected("PA2", "dr-lee", at(5), 0)
	v.RoomEnded(at(9))
	entry := func(min int, typ string) Entry { return Entry{At: at(min), Source: SourceVideo, Type: typ} }
	arrived := []Entry{ // as delivered: out of order, with an old stored row
		entry(5, "participant-disconnected"), entry(9, "room-ended"), entry(3, "participant-connected"),
		{At: at(1), Source: SourceWorker, Type: TypeStateChanged, Summary: "scheduled → waiting"},
		entry(1, "participant-connected"),
		{At: at(-60), Source: SourceAPI, Type: TypeScheduled, Summary: "visit scheduled for 2026-12-01T15:00:00Z"},
	}
	var got []string
	for _, e := range v.WithStates(arrived) {
		got = append(got, e.At.Format("15:04")+" "+e.Type+" "+e.Summary+" ["+string(e.State)+"]")
	}
	want := []string{
		"14:00 scheduled visit scheduled for 2026-12-01T15:00:00Z [scheduled]",
		"15:01 participant-connected  [waiting]",
		"15:01 state-changed scheduled → waiting [waiting]",
		"15:03 participant-connected  [in_progress]",
		"15:03 state-changed waiting → in_progress [in_progress]",
		"15:05 participant-disconnected  [waiting]",
		"15:05 state-changed in_progress → waiting [waiting]",
		"15:09 room-ended  [completed]",
		"15:09 state-changed waiting → completed [completed]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("WithStates(arrived) =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCreationRowComesFirstWhateverTheClocks: a callback stamped before the
// visit was created (Twilio's clock ahead of ours, or behind) still reads
// after the creation row, which says scheduled.
func TestCreationRowComesFirstWhateverTheClocks(t *testing.T) {
	v := newVisit()
	v.CreatedAt, v.ScheduledAt = at(5), at(30)
	v.ParticipantConnected("PA1", "pat-1", at(1))
	tl := v.WithStates([]Entry{{At: at(1), Source: SourceVideo, Type: "participant-connected"}})
	if tl[0].Type != TypeScheduled || tl[0].State != Scheduled {
		t.Fatalf("first row = %+v; want the creation row, scheduled", tl[0])
	}
	if tl[1].Type != "participant-connected" || tl[1].State != Waiting || tl[2].Summary != "scheduled → waiting" {
		t.Fatalf("rows = %+v; want the join (waiting), then scheduled → waiting", tl)
	}
}

package simulate

import (
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // daytimeZone must not depend on the host's zoneinfo

	"github.com/visitflow/visitflow/internal/visit"
)

// The scenarios docs/sandbox.md and README.md promise; a family dropped from
// families() or a renamed scenario fails here before it fails a demo.
var documented = []string{"dial-in", "dropped-call", "happy", "interpreter", "late-provider", "no-show", "reminders", "waiting-room"}

func TestScenariosAreTheDocumentedOnesSortedAndComplete(t *testing.T) {
	all := Scenarios()
	var names []string
	for _, sc := range all {
		names = append(names, sc.Name)
	}
	if !slices.Equal(names, documented) {
		t.Fatalf("Scenarios() names = %q; want %q (sorted, each once)", names, documented)
	}
	for _, sc := range all {
		if strings.TrimSpace(sc.About) == "" {
			t.Errorf("scenario %s has no About", sc.Name)
		}
		if _, ok := visit.ParseState(string(sc.Want)); !ok {
			t.Errorf("scenario %s wants %q, not a visit state", sc.Name, sc.Want)
		}
		if len(sc.steps) == 0 {
			t.Errorf("scenario %s has no steps", sc.Name)
		}
		for i, st := range sc.steps {
			if st.Say == "" || st.Do == nil {
				t.Errorf("scenario %s step %d: Say %q, Do set %v; want both", sc.Name, i, st.Say, st.Do != nil)
			}
			if st.Then != "" {
				if _, ok := visit.ParseState(string(st.Then)); !ok {
					t.Errorf("scenario %s step %d (%s) expects %q, not a visit state", sc.Name, i, st.Say, st.Then)
				}
			}
		}
		// The last step that waits must wait for the end state, or the
		// scenario claims an end it never checks on the way.
		last := visit.State("")
		for _, st := range sc.steps {
			if st.Then != "" {
				last = st.Then
			}
		}
		if last != sc.Want {
			t.Errorf("scenario %s: last awaited state %q; want its end state %q", sc.Name, last, sc.Want)
		}
	}
}

func TestLookupFindsEveryScenarioAndRefusesUnknownNames(t *testing.T) {
	for _, name := range documented {
		sc, err := Lookup(name)
		if err != nil || sc.Name != name {
			t.Errorf("Lookup(%q) = %q, %v; want the scenario", name, sc.Name, err)
		}
	}
	for _, name := range []string{"", "nope", "Happy"} {
		if sc, err := Lookup(name); err == nil || !strings.Contains(err.Error(), `no scenario "`+name+`"`) {
			t.Errorf("Lookup(%q) = %q, %v; want an error naming it", name, sc.Name, err)
		}
	}
}

func TestLookupReturnsACopy(t *testing.T) {
	sc, _ := Lookup("happy")
	sc.Want, sc.steps[0].Say = visit.NoShow, "changed"
	again, _ := Lookup("happy")
	if again.Want != visit.Completed || again.steps[0].Say == "changed" {
		t.Fatalf("changing a looked-up scenario changed the registry: %+v", again)
	}
}

func TestDaytimeZoneIsDaytimeAtEveryHour(t *testing.T) {
	start := time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC)
	for _, day := range []time.Time{start, start.AddDate(0, 6, 0)} { // winter and summer time
		for h := range 24 {
			now := day.Add(time.Duration(h)*time.Hour + 30*time.Minute)
			name := daytimeZone(now)
			loc, err := time.LoadLocation(name)
			if err != nil {
				t.Fatalf("daytimeZone(%v) = %q: %v", now, name, err)
			}
			if local := now.In(loc).Hour(); local < 9 || local >= 20 {
				t.Errorf("daytimeZone(%v) = %s, where it is %02d:30; want 09:00–20:00", now, name, local)
			}
		}
	}
}

func TestNewPlayerFillsDefaults(t *testing.T) {
	p := NewPlayer(Options{BaseURL: "http://localhost:8080//"})
	if p.opts.BaseURL != "http://localhost:8080" || p.opts.Out == nil || p.opts.HTTP == nil || p.opts.HTTP.Timeout != 10*time.Second {
		t.Fatalf("NewPlayer defaults = %+v; want the trailing slashes trimmed, io.Discard, a 10s client", p.opts)
	}
}

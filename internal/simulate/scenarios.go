package simulate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// Scenario is one scripted visit: steps played in order, and the state the
// visit must end in.
type Scenario struct {
	// Name is how the scenario is picked (Lookup, `visitflow simulate --scenario`).
	Name string
	// About is the scenario's story in one line.
	About string
	// Want is the state the visit must end in.
	Want visit.State
	// MinTimeout is the deadline the scenario needs when the caller's default
	// is shorter (it waits on server-side backoffs); zero when any will do.
	MinTimeout time.Duration

	steps []step
	// scheduleIn places scheduled_at this long after now (default 1m, so the
	// room is created at once: visits.room_lead is longer).
	scheduleIn time.Duration
	// timezone picks the visit's time zone (default America/New_York).
	timezone func(now time.Time) string
}

// step is one thing the outside world does, and the state the visit must
// reach afterwards (empty: do not wait).
type step struct {
	Say  string
	Do   func(ctx context.Context, s *simulation) error
	Then visit.State
}

// families lists every scenario family. Feature files add theirs by
// appending one call here (e.g. interpreterScenarios()).
func families() [][]Scenario {
	return [][]Scenario{
		roomScenarios(),
		interpreterScenarios(),
		dialInScenarios(),
		reminderScenarios(),
		waitingRoomScenarios(),
	}
}

// Scenarios returns every registered scenario, sorted by name.
func Scenarios() []Scenario {
	var all []Scenario
	for _, group := range families() {
		all = append(all, group...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// Lookup returns the scenario called name, or an error naming it when there
// is none.
func Lookup(name string) (Scenario, error) {
	for _, sc := range Scenarios() {
		if sc.Name == name {
			return sc, nil
		}
	}
	return Scenario{}, fmt.Errorf("no scenario %q", name)
}

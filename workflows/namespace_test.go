package workflows_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// TestNamespacesShareOneRedis runs two deployments on one Redis database
// with different redis.namespace values and the same visit id: each sees
// its own visit only, each schedules its own reminders (same task IDs, no
// conflict), and one deployment's workers never run the other's jobs.
func TestNamespacesShareOneRedis(t *testing.T) {
	url := redistest.ForTest(t)
	ns := redistest.Namespace(t)
	deployment := func(suffix string, opts ...testenv.Option) *testenv.Env {
		return testenv.New(t, append([]testenv.Option{testenv.RedisURL(url),
			testenv.Configure(func(c *config.Config) { c.Redis.Namespace = ns + "-" + suffix })}, opts...)...)
	}
	a := deployment("a", testenv.WithWorkers())
	b := deployment("b")

	at := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	for env, name := range map[*testenv.Env]string{a: "Ann", b: "Bob"} {
		body := testenv.VisitBody("V-1")
		body["scheduled_at"] = at
		body["patient"] = map[string]string{"identity": "pat-1", "name": name, "phone": testenv.PatientPhone}
		env.CreateVisit(body)
	}
	if got := a.Visit("V-1").Patient.Name; got != "Ann" {
		t.Errorf("deployment a reads V-1's patient as %q; want Ann", got)
	}
	if got := b.Visit("V-1").Patient.Name; got != "Bob" {
		t.Errorf("deployment b reads V-1's patient as %q; want Bob", got)
	}
	var list struct {
		Visits []handlers.VisitView `json:"visits"`
	}
	if code := a.API(http.MethodGet, "/v1/visits", nil, &list); code != http.StatusOK || len(list.Visits) != 1 {
		t.Errorf("deployment a lists %d visits (status %d); want its 1", len(list.Visits), code)
	}
	// The same task ID (V-1's timer chain, which holds its reminders) in
	// each namespace's queue: without namespaces the second would be
	// refused as already scheduled.
	reminders := func(e *testenv.Env) int {
		n := 0
		for _, id := range e.ScheduledIDs(workflows.QueueDefault) {
			if slices.Contains([]string{"V-1:visit:timers:t0:s0"}, id) {
				n++
			}
		}
		return n
	}
	if ra, rb := reminders(a), reminders(b); ra != 1 || rb != 1 {
		t.Errorf("scheduled timer chains: a %d, b %d; want 1 each", ra, rb)
	}

	// Both patients join; only a has workers, so only a's state-change job runs.
	for _, env := range []*testenv.Env{a, b} {
		patientJoins(t, env, "V-1", "pat-1")
	}
	a.WaitTimeline("V-1", func(tl []visit.Entry) bool { return len(testenv.Entries(tl, "state-changed")) == 1 })
	const job = "V-1:visit:state-changed:1"
	info, err := b.Inspector.GetTaskInfo(b.QueueName(workflows.QueueDefault), job)
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("b's %s with only a's workers running: %v, %v; want it pending", job, info, err)
	}
	if n := len(testenv.Entries(b.Timeline("V-1"), "state-changed")); n != 0 {
		t.Fatalf("b's timeline has %d state-changed entries with only a's workers running; want 0", n)
	}
	b.StartWorkers(b.Engine)
	b.WaitTimeline("V-1", func(tl []visit.Entry) bool { return len(testenv.Entries(tl, "state-changed")) == 1 })
	if n := len(testenv.Entries(a.Timeline("V-1"), "state-changed")); n != 1 {
		t.Errorf("a's timeline has %d state-changed entries after b's workers ran; want still 1", n)
	}
}

func patientJoins(t *testing.T, e *testenv.Env, id, identity string) {
	t.Helper()
	_, err := e.Engine.ApplyVideo(context.Background(), workflows.VideoEvent{
		VisitHint: id, Event: workflows.EventParticipantConnected, RoomName: "visit-" + id,
		RoomSID: "RM00000000000000000000000000000001", Timestamp: time.Now().UTC(),
		ParticipantSID: "PA00000000000000000000000000000001", ParticipantIdentity: identity,
		ParticipantStatus: "connected",
	})
	if err != nil {
		t.Fatal(err)
	}
}

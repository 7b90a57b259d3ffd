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
	a := deployment("a", testenv.WithWorkers(), testenv.WithSandbox(nil))
	b := deployment("b", testenv.WithSandbox(nil))

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

	// Both patients join; only a has workers, so only a's job telling the
	// provider runs: a's provider gets the SMS, b's job waits in b's queue.
	for _, env := range []*testenv.Env{a, b} {
		patientJoins(t, env, "V-1", "pat-1")
	}
	told := func(e *testenv.Env) int { return len(e.SMSTo(testenv.ProviderPhone)) }
	a.Eventually("a's provider told the patient is waiting", func() bool { return told(a) == 1 })
	const job = "V-1:visit:patient-waiting-sms:t1"
	info, err := b.Inspector.GetTaskInfo(b.QueueName(workflows.QueueDefault), job)
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("b's %s with only a's workers running: %v, %v; want it pending", job, info, err)
	}
	if n := told(b); n != 0 {
		t.Fatalf("b's provider got %d SMS with only a's workers running; want 0", n)
	}
	b.StartWorkers(b.Engine)
	b.Eventually("b's provider told the patient is waiting", func() bool { return told(b) == 1 })
	if n := told(a); n != 1 {
		t.Errorf("a's provider got %d SMS after b's workers ran; want still 1", n)
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

package workflows_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

func input(id string) workflows.CreateInput {
	return workflows.CreateInput{ID: id, ScheduledAt: "2026-12-01T15:00:00Z", Timezone: "UTC",
		Provider: workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}}
}

func stateChanges(tl []visit.Entry) []string {
	var out []string
	for _, e := range tl {
		if e.Type == "state-changed" {
			out = append(out, e.Summary)
		}
	}
	return out
}

func TestTransitionJobRunsOnceThroughAsynq(t *testing.T) {
	ctx := context.Background()
	f := testenv.New(t, testenv.WithWorkers(), testenv.WithSandbox(nil))
	in := input("V-1")
	in.Provider.Phone = testenv.ProviderPhone
	// Hours ahead, so nothing else of its schedule (a reminder, the room) happens meanwhile.
	in.ScheduledAt = time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	if _, _, err := f.Engine.CreateVisit(ctx, in); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	ev := workflows.VideoEvent{Event: workflows.EventParticipantConnected, RoomName: "visit-V-1",
		ParticipantSID: "PA1", ParticipantIdentity: "pat", Timestamp: at}
	for i := 0; i < 3; i++ { // duplicates must not add transitions
		if _, err := f.Engine.ApplyVideo(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Entering waiting tells the provider, through one job, once.
	f.WaitTaskDone(f.QueueName(workflows.QueueDefault), "V-1:visit:patient-waiting-sms:t1")
	if n := len(f.SMSTo(testenv.ProviderPhone)); n != 1 {
		t.Errorf("provider got %d patient-waiting SMS; want 1", n)
	}
	if got := stateChanges(f.Timeline("V-1")); len(got) != 1 || got[0] != "scheduled → waiting" {
		t.Fatalf("state-changed entries = %v; want one scheduled → waiting", got)
	}
}

// failingQueue refuses every enqueue, like Asynq's Redis being unreachable
// right after the visit's transaction committed.
type failingQueue struct{}

func (failingQueue) EnqueueContext(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
	return nil, errors.New("connection refused")
}

func TestOutboxSweepDeliversWhatAFailedEnqueueLeft(t *testing.T) {
	ctx := context.Background()
	broken := testenv.New(t, testenv.WithSandbox(nil), testenv.Engine(func(d *workflows.Deps) { d.Queue = failingQueue{} }))
	in := input("V-2")
	in.Provider.Phone = testenv.ProviderPhone
	if _, _, err := broken.Engine.CreateVisit(ctx, in); err != nil {
		t.Fatal(err)
	}
	// The patient joins: the change commits, handing its jobs to Asynq fails.
	ev := workflows.VideoEvent{Event: workflows.EventParticipantConnected, RoomName: "visit-V-2",
		ParticipantSID: "PA1", ParticipantIdentity: "pat", Timestamp: time.Now()}
	if _, err := broken.Engine.ApplyVideo(ctx, ev); err != nil {
		t.Fatalf("ApplyVideo with Asynq down = %v; want the fact committed anyway", err)
	}
	if jobs, _ := broken.Store.Outbox(ctx, "V-2"); len(jobs) == 0 {
		t.Fatal("outbox is empty after a failed enqueue; the job was lost")
	}
	// A healthy process on the same Redis sweeps and the job runs.
	healthy := broken.NewEngine(func(d *workflows.Deps) { d.Deleter = nil })
	broken.StartWorkers(healthy)
	// A crash right after the commit would also lose the pending mark: only
	// the full sweep's keyspace scan finds such an outbox.
	if err := broken.Conn.Client.Del(ctx, broken.Key("vf:outbox:pending")).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := healthy.SweepOutbox(ctx, false); n != 0 || err != nil {
		t.Fatalf("quick SweepOutbox() without marks = %d, %v; want 0", n, err)
	}
	n, err := healthy.SweepOutbox(ctx, true)
	if err != nil || n == 0 {
		t.Fatalf("full SweepOutbox() = %d, %v; want the stranded entries sent", n, err)
	}
	broken.WaitTaskDone(broken.QueueName(workflows.QueueDefault), "V-2:visit:patient-waiting-sms:t1")
	if n := len(broken.SMSTo(testenv.ProviderPhone)); n != 1 {
		t.Errorf("provider got %d patient-waiting SMS; want 1", n)
	}
	if jobs, _ := broken.Store.Outbox(ctx, "V-2"); len(jobs) != 0 {
		t.Fatalf("outbox after sweep = %v; want empty", jobs)
	}
	if n, _ := healthy.SweepOutbox(ctx, false); n != 0 {
		t.Fatalf("second sweep sent %d; want 0", n)
	}
}

func TestCallbackForUnknownRoomIsUnmatched(t *testing.T) {
	f := testenv.New(t)
	_, err := f.Engine.ApplyVideo(context.Background(), workflows.VideoEvent{Event: "room-created", RoomName: "visit-nope"})
	if !errors.Is(err, workflows.ErrUnmatched) {
		t.Fatalf("ApplyVideo(unknown room) = %v; want ErrUnmatched", err)
	}
	_, err = f.Engine.ApplyVideo(context.Background(), workflows.VideoEvent{Event: "room-created", RoomName: "visit-nope", VisitHint: "nope"})
	if !errors.Is(err, workflows.ErrUnmatched) {
		t.Fatalf("ApplyVideo(stale hint) = %v; want ErrUnmatched", err)
	}
}

func TestRedactPayloadNeverShowsUnknownFields(t *testing.T) {
	got := workflows.RedactPayload("x", []byte(`{"visit_id":"V-1","phone":"+15551230002","name":"Sam"}`))
	want := `{name: (redacted), phone: (redacted), visit_id: "V-1"}`
	if got != want {
		t.Fatalf("RedactPayload() = %s; want %s", got, want)
	}
}

// The pending-outbox set once kept every visit id after its entries were
// flushed: it grew with every visit, and after a crash the sweeper spent
// its runs re-reading empty outboxes 1,000 ids at a time.
func TestPendingOutboxMarkGoesWithTheLastEntry(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t)
	pending := func(id string) bool {
		ok, err := e.Conn.Client.SIsMember(ctx, e.Key("vf:outbox:pending"), id).Result()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if _, _, err := e.Engine.CreateVisit(ctx, input("V-flushed")); err != nil {
		t.Fatal(err)
	}
	ev := workflows.VideoEvent{Event: workflows.EventParticipantConnected, RoomName: "visit-V-flushed",
		ParticipantSID: "PA1", ParticipantIdentity: "pat", Timestamp: time.Now()}
	if _, err := e.Engine.ApplyVideo(ctx, ev); err != nil {
		t.Fatal(err)
	}
	e.Engine.AwaitAcks() // the acknowledgement goes behind the answer
	if pending("V-flushed") {
		t.Error("after every entry was handed to Asynq the visit is still in vf:outbox:pending; want it trimmed")
	}

	broken := e.NewEngine(func(d *workflows.Deps) { d.Queue = failingQueue{} })
	if _, _, err := broken.CreateVisit(ctx, input("V-stuck")); err != nil {
		t.Fatal(err)
	}
	if !pending("V-stuck") {
		t.Fatal("a visit whose enqueue failed is not in vf:outbox:pending; the quick sweep would miss it")
	}
	if n, err := e.Engine.SweepOutbox(ctx, false); err != nil || n == 0 {
		t.Fatalf("SweepOutbox() = %d, %v; want the stuck entries sent", n, err)
	}
	if pending("V-stuck") {
		t.Error("after the sweep sent everything the visit is still in vf:outbox:pending")
	}
	if n, _ := e.Conn.Client.SCard(ctx, e.Key("vf:outbox:pending")).Result(); n != 0 {
		t.Errorf("vf:outbox:pending holds %d ids with nothing to send; want 0", n)
	}
}

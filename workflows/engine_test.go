package workflows_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

type fixture struct {
	engine *workflows.Engine
	store  *store.Store
	conn   *redisx.Conn
}

func newFixture(t *testing.T, queue workflows.Queue) *fixture {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redistest.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	st := store.New(conn.Client)
	if queue == nil {
		queue = asynq.NewClientFromRedisClient(conn.Client)
	}
	e := workflows.New(workflows.Deps{Store: st, Queue: queue, Config: config.Default(),
		Deleter: asynq.NewInspectorFromRedisClient(conn.Client)})
	return &fixture{engine: e, store: st, conn: conn}
}

// startWorkers runs a real Asynq server on the fixture's Redis until t ends.
func (f *fixture) startWorkers(t *testing.T) {
	srv := asynq.NewServerFromRedisClient(f.conn.Client, asynq.Config{Concurrency: 4, Queues: workflows.Queues,
		LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	f.engine.Register(mux)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

func input(id string) workflows.CreateInput {
	return workflows.CreateInput{ID: id, ScheduledAt: "2026-12-01T15:00:00Z", Timezone: "UTC",
		Provider: workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}}
}

// waitFor polls the visit's timeline until an entry satisfies ok: the job
// runs in another goroutine and its only observable effect is that entry.
func waitFor(t *testing.T, f *fixture, id string, ok func([]visit.Entry) bool) []visit.Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, tl, err := f.engine.Visit(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(tl) {
			return tl
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeline never satisfied the condition: %+v", tl)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	f := newFixture(t, nil)
	f.startWorkers(t)
	if _, _, err := f.engine.CreateVisit(ctx, input("V-1")); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 15, 1, 0, 0, time.UTC)
	ev := workflows.VideoEvent{Event: workflows.EventParticipantConnected, RoomName: "visit-V-1",
		ParticipantSID: "PA1", ParticipantIdentity: "pat", Timestamp: at}
	for i := 0; i < 3; i++ { // duplicates must not add transitions
		if _, err := f.engine.ApplyVideo(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	tl := waitFor(t, f, "V-1", func(tl []visit.Entry) bool { return len(stateChanges(tl)) > 0 })
	if got := stateChanges(tl); len(got) != 1 || got[0] != "scheduled → waiting" {
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
	broken := newFixture(t, failingQueue{})
	if _, _, err := broken.engine.CreateVisit(ctx, input("V-2")); err != nil {
		t.Fatal(err)
	}
	ev := workflows.VideoEvent{Event: workflows.EventParticipantConnected, RoomName: "visit-V-2",
		ParticipantSID: "PA1", ParticipantIdentity: "dr", Timestamp: time.Now()}
	if _, err := broken.engine.ApplyVideo(ctx, ev); err != nil {
		t.Fatalf("ApplyVideo with Asynq down = %v; want the fact committed anyway", err)
	}
	if jobs, _ := broken.store.Outbox(ctx, "V-2"); len(jobs) == 0 {
		t.Fatal("outbox is empty after a failed enqueue; the job was lost")
	}
	// A healthy process on the same Redis sweeps and the job runs.
	healthy := &fixture{conn: broken.conn, store: broken.store,
		engine: workflows.New(workflows.Deps{Store: broken.store, Queue: asynq.NewClientFromRedisClient(broken.conn.Client), Config: config.Default()})}
	healthy.startWorkers(t)
	// A crash right after the commit would also lose the pending mark: only
	// the full sweep's keyspace scan finds such an outbox.
	if err := broken.conn.Client.Del(ctx, "vf:outbox:pending").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := healthy.engine.SweepOutbox(ctx, false); n != 0 || err != nil {
		t.Fatalf("quick SweepOutbox() without marks = %d, %v; want 0", n, err)
	}
	n, err := healthy.engine.SweepOutbox(ctx, true)
	if err != nil || n == 0 {
		t.Fatalf("full SweepOutbox() = %d, %v; want the stranded entries sent", n, err)
	}
	waitFor(t, healthy, "V-2", func(tl []visit.Entry) bool { return len(stateChanges(tl)) == 1 })
	if jobs, _ := broken.store.Outbox(ctx, "V-2"); len(jobs) != 0 {
		t.Fatalf("outbox after sweep = %v; want empty", jobs)
	}
	if n, _ := healthy.engine.SweepOutbox(ctx, false); n != 0 {
		t.Fatalf("second sweep sent %d; want 0", n)
	}
}

func TestCallbackForUnknownRoomIsUnmatched(t *testing.T) {
	f := newFixture(t, nil)
	_, err := f.engine.ApplyVideo(context.Background(), workflows.VideoEvent{Event: "room-created", RoomName: "visit-nope"})
	if !errors.Is(err, workflows.ErrUnmatched) {
		t.Fatalf("ApplyVideo(unknown room) = %v; want ErrUnmatched", err)
	}
	_, err = f.engine.ApplyVideo(context.Background(), workflows.VideoEvent{Event: "room-created", RoomName: "visit-nope", VisitHint: "nope"})
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

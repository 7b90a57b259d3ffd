package workflows_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

// heldAcks is the store with its first batch acknowledgement held until
// released, as a Redis round trip that has not come back yet; it records,
// in order, the acknowledgements that landed and the tasks deleted.
type heldAcks struct {
	*store.Store
	release chan struct{}
	freed   sync.Once
	once    sync.Once
	held    chan struct{} // closed when the first acknowledgement is held

	mu     sync.Mutex
	calls  []int // visits per AckOutboxes call
	events []string
}

func newHeldAcks(s *store.Store) *heldAcks {
	return &heldAcks{Store: s, release: make(chan struct{}), held: make(chan struct{})}
}

func (h *heldAcks) AckOutboxes(ctx context.Context, ids []string, jobs [][]string, all []bool) error {
	h.mu.Lock()
	h.calls = append(h.calls, len(ids))
	h.mu.Unlock()
	h.once.Do(func() { close(h.held) })
	<-h.release
	err := h.Store.AckOutboxes(ctx, ids, jobs, all)
	h.mu.Lock()
	h.events = append(h.events, "acked "+strings.Join(ids, ","))
	h.mu.Unlock()
	return err
}

// free lets the held acknowledgement go (once; also when a test fails
// first, so the env's cleanup does not wait for it forever).
func (h *heldAcks) free() { h.freed.Do(func() { close(h.release) }) }

func (h *heldAcks) record(event string) {
	h.mu.Lock()
	h.events = append(h.events, event)
	h.mu.Unlock()
}

func (h *heldAcks) snapshot() (calls []int, events []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.calls...), append([]string(nil), h.events...)
}

// recordingDeleter is the env's Inspector, noting each deletion in h.
type recordingDeleter struct {
	workflows.TaskDeleter
	h       *heldAcks
	deleted chan string
}

func (d recordingDeleter) DeleteTask(queue, id string) error {
	d.h.record("deleted " + id)
	d.deleted <- id
	return d.TaskDeleter.DeleteTask(queue, id)
}

// within fails t unless do returns within a generous bound: what it waits
// for must not depend on a round trip that is being held.
func within(t *testing.T, what string, do func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); do() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return while an acknowledgement was held: it waits for the acknowledgement", what)
	}
}

// A flush used to acknowledge its outbox entries before the callback was
// answered, a round trip of its own for every callback with jobs. Now the
// answer does not wait for it, and the acknowledgements that queue up
// behind a round trip in flight go together in the next one.
func TestCallbacksAreAnsweredBeforeTheirAcknowledgementAndShareItsRoundTrip(t *testing.T) {
	ctx := context.Background()
	var held *heldAcks
	e := testenv.New(t, testenv.Engine(func(d *workflows.Deps) {
		held = newHeldAcks(d.Store.(*store.Store))
		d.Store = held
	}))
	t.Cleanup(held.free)
	const visits = 8
	within(t, "creating visits and their patients joining", func() {
		for i := 0; i < visits; i++ {
			id := fmt.Sprintf("V-ack-%d", i)
			if _, _, err := e.Engine.CreateVisit(ctx, input(id)); err != nil {
				t.Error(err)
				return
			}
			ev := workflows.VideoEvent{Event: workflows.EventParticipantConnected, RoomName: "visit-" + id,
				ParticipantSID: "PA" + id, ParticipantIdentity: "pat", Timestamp: time.Now()}
			if _, err := e.Engine.ApplyVideo(ctx, ev); err != nil {
				t.Error(err)
				return
			}
		}
	})
	<-held.held
	held.free()
	e.Engine.AwaitAcks()

	calls, _ := held.snapshot()
	// The first create's acknowledgement went alone and was held; the 15
	// changes after it (7 creates, 8 joins, each with jobs) queued behind it.
	if len(calls) != 2 || calls[0] != 1 || calls[1] != 2*visits-1 {
		t.Errorf("acknowledgement round trips carried %v visits; want [1 %d]", calls, 2*visits-1)
	}
	for i := 0; i < visits; i++ {
		id := fmt.Sprintf("V-ack-%d", i)
		if jobs, err := e.Store.Outbox(ctx, id); err != nil || len(jobs) != 0 {
			t.Errorf("outbox of %s = %d entries, %v; want empty once acknowledged", id, len(jobs), err)
		}
	}
	if n, _ := e.Conn.Client.SCard(ctx, e.Key("vf:outbox:pending")).Result(); n != 0 {
		t.Errorf("vf:outbox:pending holds %d ids once everything was acknowledged; want 0", n)
	}
	if n, err := e.Engine.SweepOutbox(ctx, true); n != 0 || err != nil {
		t.Errorf("SweepOutbox() = %d, %v; want nothing left to send", n, err)
	}
}

// A deletion must not overtake the acknowledgement of the entry that
// created its task: were the process to die in between, the sweeper would
// send that entry again after the deletion and bring the task back.
func TestDeletionWaitsForTheAcknowledgementOfWhatItDeletes(t *testing.T) {
	ctx := context.Background()
	var held *heldAcks
	deleted := make(chan string, 16)
	e := testenv.New(t, testenv.Engine(func(d *workflows.Deps) {
		held = newHeldAcks(d.Store.(*store.Store))
		d.Store = held
		d.Deleter = recordingDeleter{TaskDeleter: d.Deleter, h: held, deleted: deleted}
	}))
	t.Cleanup(held.free)
	in := input("V-del")
	in.ScheduledAt = time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	within(t, "creating the visit", func() {
		if _, _, err := e.Engine.CreateVisit(ctx, in); err != nil {
			t.Error(err)
		}
	})
	<-held.held // the create's entries (its timers among them) are in Asynq, their acknowledgement out

	cancelled := make(chan error, 1)
	go func() { _, err := e.Engine.CancelVisit(ctx, "V-del"); cancelled <- err }()
	select {
	case id := <-deleted:
		t.Errorf("task %s was deleted while the acknowledgement of the entry that created it was still out", id)
	case <-time.After(300 * time.Millisecond):
		// The deletion is waiting, as it must; nothing else to await.
	}
	held.free()
	if err := <-cancelled; err != nil {
		t.Fatal(err)
	}
	e.Engine.AwaitAcks()

	_, events := held.snapshot()
	if len(events) < 2 || events[0] != "acked V-del" || !strings.HasPrefix(events[1], "deleted ") {
		t.Fatalf("events = %v; want the create's acknowledgement, then its timers deleted", events)
	}
	if jobs, _ := e.Store.Outbox(ctx, "V-del"); len(jobs) != 0 {
		t.Errorf("outbox holds %d entries after the cancel; want none", len(jobs))
	}
}

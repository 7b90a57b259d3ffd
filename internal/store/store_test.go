package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/visit"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

func newStore(t *testing.T) *store.Store {
	t.Helper()
	s, _, _ := newStoreOn(t)
	return s
}

// newStoreOn is newStore with its Redis connection and namespace, for a
// second store on the same data. Each test has a namespace of its own, which
// keeps tests apart on a shared Redis Cluster.
func newStoreOn(t testing.TB) (*store.Store, *redisx.Conn, store.Option) {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redistest.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ns := store.WithNamespace(redistest.Namespace(t))
	return store.New(conn.Client, ns), conn, ns
}

var t0 = time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)

func newVisit(id string, at time.Time) *visit.Visit {
	return &visit.Visit{ID: id, ScheduledAt: at, Room: visit.Room{Name: visit.RoomName(id)},
		Provider: visit.Person{Identity: "dr"}, Patient: visit.Person{Identity: "pat"}}
}

func TestCreateIsOnceAndIndexed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	v := newVisit("V-1", t0)
	v.RequestHash = "a"
	v.Enqueue(visit.Job{ID: "V-1:room", Type: "room:create"})
	got, created, err := s.Create(ctx, v)
	if err != nil || !created || got.ID != "V-1" {
		t.Fatalf("Create() = %v, %v, %v; want V-1, true, nil", got, created, err)
	}
	again := newVisit("V-1", t0.Add(time.Hour))
	again.RequestHash = "b"
	got, created, err = s.Create(ctx, again)
	if err != nil || created || got.RequestHash != "a" {
		t.Fatalf("second Create() = %+v, %v, %v; want the first visit, false, nil", got, created, err)
	}
	if id, err := s.VisitForRoom(ctx, "visit-V-1"); id != "V-1" || err != nil {
		t.Fatalf("VisitForRoom() = %q, %v; want V-1", id, err)
	}
	jobs, err := s.Outbox(ctx, "V-1")
	if err != nil || len(jobs) != 1 || jobs[0].ID != "V-1:room" {
		t.Fatalf("Outbox() = %v, %v; want the create's job", jobs, err)
	}
	if err := s.AckOutbox(ctx, "V-1", "V-1:room"); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := s.Outbox(ctx, "V-1"); len(jobs) != 0 {
		t.Fatalf("Outbox() after ack = %v; want empty", jobs)
	}
}

func TestUpdateDropsDuplicateTokensAndConcurrentWritesAllLand(t *testing.T) {
	ctx := context.Background()
	s, conn, ns := newStoreOn(t)
	if _, _, err := s.Create(ctx, newVisit("V-2", t0)); err != nil {
		t.Fatal(err)
	}
	apply := func(sid string) func(v *visit.Visit) error {
		return func(v *visit.Visit) error {
			if v.ParticipantConnected(sid, "guest-"+sid, t0) {
				v.Log(visit.Entry{At: t0, Source: visit.SourceVideo, Type: "participant-connected"})
			}
			return nil
		}
	}
	if _, err := s.Update(ctx, "V-2", "tok-1", apply("PA0")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "V-2", "tok-1", apply("PA-other")); !errors.Is(err, visit.ErrDuplicate) {
		t.Fatalf("Update() with a used token = %v; want ErrDuplicate", err)
	}
	// Two stores on one Redis stand for two web replicas.
	other := store.New(conn.Client, ns)
	var wg sync.WaitGroup
	for i := 1; i <= 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st := s
			if i%2 == 0 {
				st = other
			}
			if _, err := st.Update(ctx, "V-2", "", apply(fmt.Sprintf("PA%d", i))); err != nil {
				t.Errorf("Update(PA%d) = %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	v, err := s.Get(ctx, "V-2")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.Facts.Participants); n != 41 {
		t.Fatalf("participants after 41 concurrent updates = %d; want 41", n)
	}
	tl, _ := s.Timeline(ctx, "V-2")
	if len(tl) != 41 {
		t.Fatalf("timeline entries = %d; want 41", len(tl))
	}
}

func TestUpdateUnknownVisit(t *testing.T) {
	s := newStore(t)
	_, err := s.Update(context.Background(), "nope", "", func(*visit.Visit) error { return nil })
	if !errors.Is(err, visit.ErrNotFound) {
		t.Fatalf("Update(unknown) = %v; want ErrNotFound", err)
	}
}

func TestUpdatePassesFnErrorsThrough(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, _, err := s.Create(ctx, newVisit("V-3", t0)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Update(ctx, "V-3", "", func(*visit.Visit) error { return visit.ErrInvalidChange })
	if !errors.Is(err, visit.ErrInvalidChange) {
		t.Fatalf("Update() = %v; want fn's error", err)
	}
}

func TestListPagesNewestFirstAndFilters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for i := 0; i < 7; i++ {
		// Two visits share each time, so paging must handle equal scores.
		at := t0.Add(time.Duration(i/2) * time.Hour)
		v := newVisit(fmt.Sprintf("V-%d", i), at)
		if i == 3 {
			v.Cancel(t0)
		}
		if _, _, err := s.Create(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		vs, next, err := s.List(ctx, visit.ListQuery{Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			seen = append(seen, v.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 7 {
		t.Fatalf("paged through %v; want all 7 visits once", seen)
	}
	uniq := map[string]bool{}
	for _, id := range seen {
		uniq[id] = true
	}
	if len(uniq) != 7 {
		t.Fatalf("paging returned duplicates: %v", seen)
	}
	if seen[0] != "V-6" {
		t.Fatalf("first listed = %s; want the newest schedule V-6", seen[0])
	}
	vs, _, err := s.List(ctx, visit.ListQuery{Limit: 10, State: visit.Cancelled})
	if err != nil || len(vs) != 1 || vs[0].ID != "V-3" {
		t.Fatalf("List(state=cancelled) = %v, %v; want V-3", vs, err)
	}
	vs, _, _ = s.List(ctx, visit.ListQuery{Limit: 10, From: t0.Add(2 * time.Hour), To: t0.Add(3 * time.Hour)})
	if len(vs) != 3 {
		t.Fatalf("List(from,to) returned %d; want 3", len(vs))
	}
}

// TestUpdateStampsUpdatedAtFromItsClock: updated_at comes from the clock the
// store was given, so a test (or a replay) with a fake clock sees its time.
func TestUpdateStampsUpdatedAtFromItsClock(t *testing.T) {
	ctx := context.Background()
	_, conn, ns := newStoreOn(t)
	clk := clock.NewFake(time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC))
	s := store.New(conn.Client, ns, store.WithClock(clk))
	if _, _, err := s.Create(ctx, newVisit("V-clock", t0)); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Update(ctx, "V-clock", "", func(v *visit.Visit) error {
		v.ParticipantConnected("PA1", "pat", t0)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "V-clock")
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now(); !got.UpdatedAt.Equal(want) || !ch.Visit.UpdatedAt.Equal(want) {
		t.Fatalf("updated_at = %v (change says %v); want the store's clock %v", got.UpdatedAt, ch.Visit.UpdatedAt, want)
	}
}

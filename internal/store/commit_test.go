package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/visit"
)

// connect returns a Redis connection and this test's namespace.
func connect(t *testing.T) (*redisx.Conn, string) {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redistest.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, redistest.Namespace(t)
}

func connectAt(sid string) func(v *visit.Visit) error {
	return func(v *visit.Visit) error {
		if v.ParticipantConnected(sid, "guest-"+sid, t0) {
			v.Log(visit.Entry{At: t0, Source: visit.SourceVideo, Type: "participant-connected", Summary: sid})
		}
		return nil
	}
}

// TestUpdateWorksAfterRedisForgetsItsScripts: a Redis that restarted (or a
// new Cluster node) has no scripts loaded; updates still commit.
func TestUpdateWorksAfterRedisForgetsItsScripts(t *testing.T) {
	ctx := context.Background()
	conn, ns := connect(t)
	s := store.New(conn.Client, store.WithNamespace(ns))
	if _, _, err := s.Create(ctx, newVisit("V-1", t0)); err != nil {
		t.Fatal(err)
	}
	for i, sid := range []string{"PA1", "PA2"} {
		if err := conn.Client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		v := visit.Job{ID: fmt.Sprintf("V-1:test:%d", i), Type: "test"}
		if _, err := s.Update(ctx, "V-1", "tok-"+sid, func(vv *visit.Visit) error {
			vv.Enqueue(v)
			return connectAt(sid)(vv)
		}); err != nil {
			t.Fatalf("Update after SCRIPT FLUSH = %v", err)
		}
	}
	v, err := s.Get(ctx, "V-1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.Facts.Participants); n != 2 {
		t.Errorf("participants = %d; want 2", n)
	}
	if jobs, _ := s.Outbox(ctx, "V-1"); len(jobs) != 2 {
		t.Errorf("outbox = %v; want both jobs", jobs)
	}
}

// TestVisitStoredBeforeRevisionsIsReadAndUpdated: a visit written by an
// earlier version (plain JSON, no revision) is read as it is and updated.
func TestVisitStoredBeforeRevisionsIsReadAndUpdated(t *testing.T) {
	ctx := context.Background()
	conn, ns := connect(t)
	s := store.New(conn.Client, store.WithNamespace(ns))
	old := `{"id":"V-old","scheduled_at":"2026-12-01T15:00:00Z","timezone":"UTC","provider":{"identity":"dr"},` +
		`"patient":{"identity":"pat"},"room":{"name":"visit-V-old"},"dial_in":{},"created_at":"2026-11-30T10:00:00Z",` +
		`"updated_at":"2026-11-30T10:00:00Z","schedule":0,"transitions":0,"facts":{}}`
	if err := conn.Client.Set(ctx, ns+":vf:visit:{V-old}", old, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, "V-old"); err != nil || v.Patient.Identity != "pat" {
		t.Fatalf("Get(old visit) = %+v, %v; want it read", v, err)
	}
	// Two writers at once, both reading the old form: both land.
	var wg sync.WaitGroup
	for _, sid := range []string{"PA1", "PA2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := store.New(conn.Client, store.WithNamespace(ns)).Update(ctx, "V-old", "", connectAt(sid)); err != nil {
				t.Errorf("Update(old visit) = %v", err)
			}
		}()
	}
	wg.Wait()
	v, err := s.Get(ctx, "V-old")
	if err != nil || len(v.Facts.Participants) != 2 {
		t.Fatalf("after two updates: %+v, %v; want 2 participants", v, err)
	}
	raw, _ := conn.Client.Get(ctx, ns+":vf:visit:{V-old}").Result()
	if !strings.HasPrefix(raw, "2\n{") {
		t.Errorf("stored visit starts %.10q; want revision 2", raw)
	}
}

// TestOneTokenFromManyWritersAppliesOnce: the same callback delivered to
// several web replicas at once is applied by exactly one of them.
func TestOneTokenFromManyWritersAppliesOnce(t *testing.T) {
	ctx := context.Background()
	conn, ns := connect(t)
	s := store.New(conn.Client, store.WithNamespace(ns))
	if _, _, err := s.Create(ctx, newVisit("V-1", t0)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replica := store.New(conn.Client, store.WithNamespace(ns)) // its own in-process locks
			_, err := replica.Update(ctx, "V-1", "tok-same", connectAt(fmt.Sprintf("PA%d", i)))
			switch {
			case err == nil:
				mu.Lock()
				applied++
				mu.Unlock()
			case !errors.Is(err, visit.ErrDuplicate):
				t.Errorf("Update = %v", err)
			}
		}()
	}
	wg.Wait()
	v, _ := s.Get(ctx, "V-1")
	if applied != 1 || len(v.Facts.Participants) != 1 {
		t.Fatalf("one token from 20 writers: %d applied, %d participants; want 1 and 1", applied, len(v.Facts.Participants))
	}
	if tl, _ := s.Timeline(ctx, "V-1"); len(tl) != 1 {
		t.Fatalf("timeline = %d entries; want 1", len(tl))
	}
}

// TestGuestsAreReadAndWrittenOneByOne: a guest's change reads and writes
// that guest alone, yet the visit read back has every guest; guests
// changed at once by different writers all land, and the provider and
// patient, who decide the state, are always there.
func TestGuestsAreReadAndWrittenOneByOne(t *testing.T) {
	ctx := context.Background()
	conn, ns := connect(t)
	s := store.New(conn.Client, store.WithNamespace(ns))
	if _, _, err := s.Create(ctx, newVisit("V-big", t0)); err != nil {
		t.Fatal(err)
	}
	join := func(sid, who string) func(v *visit.Visit) error {
		return func(v *visit.Visit) error {
			if v.ParticipantConnected(sid, who, t0) {
				v.Log(visit.Entry{At: t0, Source: visit.SourceVideo, Type: "participant-connected", Summary: sid})
			}
			return nil
		}
	}
	if _, err := s.UpdateParticipant(ctx, "V-big", "", "PA-pat", join("PA-pat", "pat")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sid := fmt.Sprintf("PA-g%d", i)
			replica := store.New(conn.Client, store.WithNamespace(ns))
			if _, err := replica.UpdateParticipant(ctx, "V-big", "", sid, func(v *visit.Visit) error {
				if n := len(v.Facts.Participants); n > 2 {
					return fmt.Errorf("a guest's change saw %d participants; want the patient and itself", n)
				}
				return join(sid, "guest-"+sid)(v)
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// A change about the provider sees the patient: the state is whole.
	ch, err := s.UpdateParticipant(ctx, "V-big", "", "PA-dr", join("PA-dr", "dr"))
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.Visit.State(); got != visit.InProgress {
		t.Errorf("state after the provider joined = %s; want in_progress", got)
	}
	v, err := s.Get(ctx, "V-big")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.Facts.Participants); n != 32 {
		t.Fatalf("participants read back = %d; want 32 (patient, provider, 30 guests)", n)
	}
	if _, tl, err := s.GetWithTimeline(ctx, "V-big"); err != nil || len(tl) != 32 {
		t.Fatalf("timeline = %d entries, %v; want 32", len(tl), err)
	}
	if list, err := s.GetMany(ctx, []string{"V-big"}); err != nil || len(list[0].Facts.Participants) != 32 {
		t.Fatalf("GetMany = %v, %v; want the visit with 32 participants", list, err)
	}
	// The record itself holds the provider and the patient, not the guests.
	raw, _ := conn.Client.Get(ctx, ns+":vf:visit:{V-big}").Result()
	if strings.Contains(raw, "PA-g") || !strings.Contains(raw, "PA-pat") {
		t.Errorf("stored record = %s; want the patient in it and no guest", raw)
	}
}

// TestGuestsStoredInlineMoveOut: a visit written before guests were kept
// apart holds them in its record; they read as before and move to the
// guests hash on the next write.
func TestGuestsStoredInlineMoveOut(t *testing.T) {
	ctx := context.Background()
	conn, ns := connect(t)
	s := store.New(conn.Client, store.WithNamespace(ns))
	old := `3\n{"id":"V-old","scheduled_at":"2026-12-01T15:00:00Z","timezone":"UTC","provider":{"identity":"dr"},` +
		`"patient":{"identity":"pat"},"room":{"name":"visit-V-old"},"dial_in":{},"created_at":"2026-11-30T10:00:00Z",` +
		`"updated_at":"2026-11-30T10:00:00Z","schedule":0,"transitions":0,"facts":{"participants":{` +
		`"PA1":{"sid":"PA1","identity":"guest-1","connected_at":"2026-12-01T15:01:00Z"},` +
		`"PA2":{"sid":"PA2","identity":"pat","connected_at":"2026-12-01T15:02:00Z"}}}}`
	if err := conn.Client.Set(ctx, ns+":vf:visit:{V-old}", strings.Replace(old, `\n`, "\n", 1), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "V-old", "", connectAt("PA3")); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, "V-old")
	if err != nil || len(v.Facts.Participants) != 3 {
		t.Fatalf("after the update: %+v, %v; want 3 participants", v, err)
	}
	guests, _ := conn.Client.HKeys(ctx, ns+":vf:visit:{V-old}:guests").Result()
	if len(guests) != 2 {
		t.Errorf("guests hash = %v; want PA1 and PA3", guests)
	}
}

package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/visit"
)

// TestRoundTripThroughSentinel: with redis.url in the redis-sentinel form,
// the store finds the master through Sentinel and a visit's atomic update
// (WATCH/MULTI, timeline, outbox) works as on a single Redis.
func TestRoundTripThroughSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a master and a sentinel")
	}
	master := redistest.StartServer(t, "--requirepass", "s3cret")
	conf := t.TempDir() + "/sentinel.conf"
	_, port, _ := strings.Cut(master.Addr(), ":")
	body := fmt.Sprintf("sentinel monitor vfmaster 127.0.0.1 %s 1\nsentinel auth-pass vfmaster s3cret\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := redistest.StartServer(t, conf, "--sentinel")
	ctx := context.Background()
	conn, err := redisx.Connect(ctx, "redis-sentinel://s3cret@"+sentinel.Addr()+"/vfmaster/3")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s := store.New(conn.Client)

	v := newVisit("V-sentinel", t0)
	if _, created, err := s.Create(ctx, v); err != nil || !created {
		t.Fatalf("Create() = %v, %v; want created", created, err)
	}
	ch, err := s.Update(ctx, "V-sentinel", "tok-1", func(v *visit.Visit) error {
		v.ParticipantConnected("PA1", "pat", t0)
		v.Log(visit.Entry{At: t0, Source: visit.SourceVideo, Type: "participant-connected"})
		v.Enqueue(visit.Job{ID: "V-sentinel:state-changed:1", Type: "visit:state-changed"})
		return nil
	})
	if err != nil || ch.Visit.State() != visit.Waiting {
		t.Fatalf("Update() = %v, %v; want the patient waiting", ch.Visit, err)
	}
	if _, err := s.Update(ctx, "V-sentinel", "tok-1", func(*visit.Visit) error { return nil }); !errors.Is(err, visit.ErrDuplicate) {
		t.Fatalf("the same idempotency token again = %v; want ErrDuplicate", err)
	}
	got, err := s.Get(ctx, "V-sentinel")
	if err != nil || got.State() != visit.Waiting {
		t.Fatalf("Get() = %v, %v; want waiting", got, err)
	}
	tl, _ := s.Timeline(ctx, "V-sentinel")
	jobs, _ := s.Outbox(ctx, "V-sentinel")
	if len(tl) != 1 || len(jobs) != 1 {
		t.Fatalf("timeline %d entries, outbox %d jobs; want 1 and 1", len(tl), len(jobs))
	}
}

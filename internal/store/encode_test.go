package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/visit"
)

// beyondJSON is a time encoding/json refuses to write (year 10000).
var beyondJSON = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

// A change holding a value that cannot be encoded is an error of that
// change: it once panicked half-way through writing, after the indexes.
func TestUnencodableChangesAreErrorsAndWriteNothing(t *testing.T) {
	ctx := context.Background()
	s, conn, ns := newNamespacedStore(t)

	v := newVisit("V-enc", t0)
	v.Enqueue(visit.Job{ID: "V-enc:no-show", Type: "check:no-show", ProcessAt: beyondJSON})
	if _, _, err := s.Create(ctx, v); err == nil {
		t.Fatal("Create with a job at year 10000 = nil error; want an error")
	}
	if keys := storeKeys(t, conn, ns); len(keys) != 0 {
		t.Errorf("a failed Create left %v", keys)
	}

	if _, _, err := s.Create(ctx, newVisit("V-ok", t0)); err != nil {
		t.Fatal(err)
	}
	before := storeKeys(t, conn, ns)
	_, err := s.Update(ctx, "V-ok", "", func(v *visit.Visit) error {
		v.Log(visit.Entry{At: t0, Type: "x"})
		v.Enqueue(visit.Job{ID: "V-ok:late", Type: "check:no-show", ProcessAt: beyondJSON})
		return nil
	})
	if err == nil {
		t.Fatal("Update enqueuing a job at year 10000 = nil error; want an error")
	}
	if after := storeKeys(t, conn, ns); len(after) != len(before) {
		t.Errorf("a failed Update changed the keys from %v to %v", before, after)
	}
	if tl, err := s.Timeline(ctx, "V-ok"); err != nil || len(tl) != 0 {
		t.Errorf("timeline after a failed Update = %v, %v; want empty", tl, err)
	}
}

func storeKeys(t *testing.T, conn *redisx.Conn, ns string) []string {
	t.Helper()
	keys, err := redistest.AllKeys(context.Background(), conn.Client, ns+":vf:*")
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	return keys
}

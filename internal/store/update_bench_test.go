package store_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/store"
)

// roundTrips counts the commands and pipelines a client sends: each is one
// round trip to Redis.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// BenchmarkUpdate is one change of a visit (its time zone, alternating)
// through Update on real Redis, reporting round trips per change:
//
//   - same replica: every change through one store, which starts from the
//     visit as it left it (one round trip, the commit);
//   - replicas taking turns: two stores alternate, so each finds its copy
//     overtaken; the commit's refusal carries the current visit (two);
//   - new replica each time: a store that has never seen the visit reads
//     it first (two).
func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	zones := [2]string{"Europe/Paris", "America/Chicago"}
	run := func(b *testing.B, storeFor func(i int) *store.Store, rt *roundTrips) {
		if _, _, err := storeFor(0).Create(ctx, newVisit("V-1", t0)); err != nil {
			b.Fatal(err)
		}
		rt.n.Store(0)
		b.ResetTimer()
		for i := range b.N {
			if _, err := storeFor(i).Update(ctx, "V-1", "", setTimezone(zones[i%2])); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(rt.n.Load())/float64(b.N), "round-trips/op")
	}
	setup := func(b *testing.B) (redis.UniversalClient, *roundTrips, store.Option) {
		_, conn, ns := newStoreOn(b)
		rt := &roundTrips{}
		conn.Client.AddHook(rt)
		return conn.Client, rt, ns
	}
	b.Run("same-replica", func(b *testing.B) {
		rdb, rt, ns := setup(b)
		s := store.New(rdb, ns)
		run(b, func(int) *store.Store { return s }, rt)
	})
	b.Run("replicas-taking-turns", func(b *testing.B) {
		rdb, rt, ns := setup(b)
		replicas := [2]*store.Store{store.New(rdb, ns), store.New(rdb, ns)}
		run(b, func(i int) *store.Store { return replicas[i%2] }, rt)
	})
	b.Run("new-replica-each-time", func(b *testing.B) {
		rdb, rt, ns := setup(b)
		run(b, func(int) *store.Store { return store.New(rdb, ns) }, rt)
	})
}

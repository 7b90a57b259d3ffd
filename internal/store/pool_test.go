package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/visit"
)

// TestUpdatesWithJobsDoNotStarveThePool: as many concurrent updates writing
// jobs as the client has connections must all commit. An update that held
// its watched connection while taking another one for the outbox pending
// set deadlocked the pool under webhook load (callbacks answered 503 with
// "connection pool timeout").
func TestUpdatesWithJobsDoNotStarveThePool(t *testing.T) {
	ctx := context.Background()
	url := redistest.ForTest(t)
	conn, err := redisx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const poolSize = 2
	var small redis.UniversalClient
	switch c := conn.Client.(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize, o.PoolTimeout = poolSize, 2*time.Second
		small = redis.NewClient(&o)
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize, o.PoolTimeout = poolSize, 2*time.Second
		small = redis.NewClusterClient(&o)
	default:
		t.Skipf("client %T", c)
	}
	defer small.Close()
	s := store.New(small, store.WithNamespace(redistest.Namespace(t)))

	const visits = 4 * poolSize
	for i := 0; i < visits; i++ {
		if _, _, err := s.Create(ctx, newVisit(fmt.Sprintf("V-pool%d", i), t0)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, visits*5)
	for i := 0; i < visits; i++ {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			for n := 0; n < 5; n++ {
				_, err := s.Update(ctx, id, "", func(v *visit.Visit) error {
					v.Enqueue(visit.Job{ID: fmt.Sprintf("%s:job:%d", id, n), Type: "test:job"})
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		}(fmt.Sprintf("V-pool%d", i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update: %v", err)
	}
	pending, err := s.PendingOutboxes(ctx, 100)
	if err != nil || len(pending) != visits {
		t.Fatalf("PendingOutboxes() = %d ids, %v; want all %d visits marked", len(pending), err, visits)
	}
	jobs, err := s.Outbox(ctx, "V-pool0")
	if err != nil || len(jobs) != 5 {
		t.Fatalf("Outbox(V-pool0) = %d jobs, %v; want 5", len(jobs), err)
	}
}

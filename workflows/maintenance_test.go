package workflows_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/workflows"
)

func TestRetentionPurgeDeletesOnlyOldFinishedVisits(t *testing.T) {
	env := newSMSEnv(t)
	clk := clock.NewFake(time.Now())
	e := newEngine(env, env.Twilio, clk)
	at := time.Now().Add(time.Hour)
	for _, id := range []string{"V-old", "V-open"} {
		if _, _, err := e.CreateVisit(context.Background(), visitInput(id, at, "UTC")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.CancelVisit(context.Background(), "V-old"); err != nil {
		t.Fatal(err)
	}
	if n, err := e.PurgeFinished(context.Background()); err != nil || n != 0 {
		t.Fatalf("purge before retention = %d, %v; want 0", n, err)
	}
	clk.Advance(env.Config.Visits.Retention + 2*time.Hour)
	// Two schedulers purging at once delete it once.
	var total atomic.Int32
	var wg sync.WaitGroup
	for _, eng := range []*workflows.Engine{e, newEngine(env, env.Twilio, clk)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := eng.PurgeFinished(context.Background())
			if err != nil {
				t.Error(err)
			}
			total.Add(int32(n))
		}()
	}
	wg.Wait()
	if total.Load() != 1 {
		t.Fatalf("purged %d; want 1", total.Load())
	}
	if _, _, err := e.Visit(context.Background(), "V-old"); err == nil {
		t.Fatal("V-old still readable after purge")
	}
	if _, _, err := e.Visit(context.Background(), "V-open"); err != nil {
		t.Fatalf("V-open (not finished) purged: %v", err)
	}
}

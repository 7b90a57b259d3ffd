package loadgen_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/testenv"
)

// setupAndRun creates o's visits, sends their callbacks and reports,
// failing t on an error of either.
func setupAndRun(t *testing.T, o loadgen.Options) loadgen.Report {
	t.Helper()
	ctx := context.Background()
	if err := loadgen.Setup(ctx, o); err != nil {
		t.Fatal(err)
	}
	rep, err := loadgen.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestLoadRecordsEveryAcknowledgedCallback(t *testing.T) {
	w := testenv.New(t)
	o := loadgen.Options{BaseURL: w.URL, AuthToken: authToken, APIToken: apiToken, RunID: "t", Visits: 8, Callbacks: 80}
	var mu sync.Mutex
	var acked []loadgen.Callback
	o.OnResult = func(c loadgen.Callback, status int) {
		if status == http.StatusNoContent {
			mu.Lock()
			acked = append(acked, c)
			mu.Unlock()
		}
	}
	rep := setupAndRun(t, o)
	if rep.Sent != 80 || rep.Acked != 80 || rep.P50 <= 0 || rep.P99 < rep.P50 {
		t.Fatalf("report = %+v; want 80 sent and acknowledged with latencies", rep)
	}
	checkAcked(t, w, acked)
	// 10 callbacks per visit: five connections, all ended.
	if ps := participants(w, o.VisitID(3)); len(ps) != 5 {
		t.Fatalf("visit %s has %d participants; want 5", o.VisitID(3), len(ps))
	}
}

func TestLoadRateLimits(t *testing.T) {
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer bare.Close()
	o := loadgen.Options{BaseURL: bare.URL, AuthToken: authToken, Visits: 4, Callbacks: 20, Rate: 100}
	rep, err := loadgen.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// 20 callbacks at 100/s cannot finish in less than the 19 intervals between them.
	if rep.Acked != 20 || rep.Elapsed < 19*10*time.Millisecond {
		t.Fatalf("report = %+v; want 20 acked over at least 190ms", rep)
	}
}

// BenchmarkWebhookPath compares signed participant callbacks through
// visitflow's whole HTTP edge on real Redis (signature check, parse, atomic
// update, outbox to Asynq) with a bare handler that only answers 204, from 64
// concurrent senders over real TCP, 8 callbacks per visit, in the same run. It reports callbacks/s
// and p50/p99 latency for each (docs/benchmarks.md, "Webhook path").
func BenchmarkWebhookPath(b *testing.B) {
	// A visit sees a handful of participant events: 8 per visit (four
	// connections opened and closed), 64 senders working through the visits.
	const senders, perVisit = 64, 8
	run := func(b *testing.B, baseURL string, setup bool) {
		o := loadgen.Options{BaseURL: baseURL, AuthToken: authToken, APIToken: apiToken,
			Visits: max(senders, b.N/perVisit), Senders: senders, Callbacks: b.N, RunID: loadgen.NewRunID()}
		if setup {
			if err := loadgen.Setup(context.Background(), o); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		rep, err := loadgen.Run(context.Background(), o)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Acked != b.N {
			b.Fatalf("report = %+v; want all %d acknowledged", rep, b.N)
		}
		b.ReportMetric(rep.PerSecond(), "callbacks/s")
		b.ReportMetric(float64(rep.P50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(rep.P99.Microseconds())/1000, "p99-ms")
	}
	b.Run("visitflow", func(b *testing.B) {
		w := testenv.New(b)
		run(b, w.URL, true)
	})
	b.Run("bare204", func(b *testing.B) {
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.ParseForm()
			w.WriteHeader(http.StatusNoContent)
		}))
		defer bare.Close()
		run(b, bare.URL, false)
	})
}

// A realistic visit's seven callbacks leave it as a real one ends: three
// connections (the provider rejoined with a new ParticipantSid), all closed,
// and the visit completed by room-ended; sent through net/http's client or
// as prepared requests over the generator's own connections (Wire).
func TestRealisticVisitEndsCompleted(t *testing.T) {
	for _, wire := range []bool{false, true} {
		t.Run(fmt.Sprintf("wire=%v", wire), func(t *testing.T) {
			w := testenv.New(t)
			o := loadgen.Options{BaseURL: w.URL, AuthToken: authToken, APIToken: apiToken, RunID: "r", Visits: 3,
				Senders: 2, Plan: loadgen.RealisticVisit, Wire: wire}
			rep := setupAndRun(t, o)
			if rep.Sent != 21 || rep.Acked != 21 {
				t.Fatalf("report = %+v; want 21 callbacks sent and acknowledged", rep)
			}
			for n := 0; n < 3; n++ {
				ps := participants(w, o.VisitID(n))
				if len(ps) != 3 {
					t.Fatalf("visit %d has %d participants; want 3 (patient, provider twice)", n, len(ps))
				}
				for sid, p := range ps {
					if p.DisconnectedAt == nil {
						t.Errorf("visit %d: participant %s is still connected", n, sid)
					}
				}
				if v := w.Visit(o.VisitID(n)); v.State != "completed" {
					t.Fatalf("visit %d state = %q; want completed", n, v.State)
				}
			}
		})
	}
}

// The wire sender counts what is not a 204 as the net/http one does, and
// dials again after a server closes the connection.
func TestWireCountsRefusalsAndRedialsAClosedConnection(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 1:
			w.WriteHeader(http.StatusNoContent)
		case 2:
			w.Header().Set("Connection", "close")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			http.Error(w, "bad signature", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	o := loadgen.Options{BaseURL: srv.URL, AuthToken: authToken, Visits: 1, Callbacks: 9, Wire: true}
	rep, err := loadgen.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 9 || rep.Acked != 3 || rep.Unavailable != 3 || rep.Other != 3 {
		t.Fatalf("report = %+v; want 9 sent: 3 acknowledged, 3 unavailable, 3 other", rep)
	}
}

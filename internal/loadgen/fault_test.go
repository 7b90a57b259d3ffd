package loadgen_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
)

// outcomes collects what the load generator saw, by status.
type outcomes struct {
	mu     sync.Mutex
	acked  []loadgen.Callback
	failed []loadgen.Callback // anything but 204: Twilio would retry these
	status map[int]int
}

func (o *outcomes) record(c loadgen.Callback, status int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status == nil {
		o.status = map[int]int{}
	}
	o.status[status]++
	if status == http.StatusNoContent {
		o.acked = append(o.acked, c)
	} else {
		o.failed = append(o.failed, c)
	}
}

// retryFailed resends every unacknowledged callback until it is acknowledged,
// as Twilio's retries would, through o.
func (oc *outcomes) retryFailed(t *testing.T, o loadgen.Options) {
	t.Helper()
	for _, c := range oc.failed {
		if status := loadgen.Resend(context.Background(), o, c); status != http.StatusNoContent {
			t.Fatalf("retry of %s %s = %d; want 204 once everything is back", c.Event, c.ParticipantSID, status)
		}
	}
}

// checkComplete asserts that every visit of the run holds all its
// connections, each ended: the state is what the callbacks say.
func checkComplete(t *testing.T, w *testenv.Env, o loadgen.Options) {
	t.Helper()
	want := o.Callbacks / o.Visits / 2
	for n := 0; n < o.Visits; n++ {
		ps := participants(w, o.VisitID(n))
		ended := 0
		for _, p := range ps {
			if p.DisconnectedAt != nil {
				ended++
			}
		}
		if len(ps) != want || ended != want {
			t.Fatalf("visit %s: %d participants, %d ended; want %d and %d", o.VisitID(n), len(ps), ended, want, want)
		}
	}
}

func TestRedisStoppedAndRestartedUnderLoad(t *testing.T) {
	// Append-only with fsync on every write: what Redis acknowledged survives
	// the restart, as in production.
	redis := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	w := startWeb(t, redis.URL(), redistest.Namespace(t), "")
	o := loadgen.Options{BaseURL: w.URL, AuthToken: authToken, APIToken: apiToken, RunID: "r",
		Visits: 16, Senders: 8, Callbacks: 1600}
	ctx := context.Background()
	if err := loadgen.Setup(ctx, o); err != nil {
		t.Fatal(err)
	}

	// Stop Redis once 200 callbacks are acknowledged; start it again once 50
	// have been refused. Both happen while the senders keep going.
	var (
		oc                  outcomes
		stopOnce, startOnce sync.Once
		down                = make(chan struct{})
		refusedWhileDown    int
		mu                  sync.Mutex
		restartErr          error
		restarted           = make(chan struct{})
	)
	o.OnResult = func(c loadgen.Callback, status int) {
		oc.record(c, status)
		oc.mu.Lock()
		acked := len(oc.acked)
		oc.mu.Unlock()
		if acked >= 200 {
			stopOnce.Do(func() {
				if err := redis.Stop(); err != nil {
					t.Error(err)
				}
				close(down)
			})
		}
		select {
		case <-down:
		default:
			return
		}
		if status != http.StatusNoContent {
			mu.Lock()
			refusedWhileDown++
			n := refusedWhileDown
			mu.Unlock()
			if n >= 50 {
				startOnce.Do(func() {
					restartErr = redis.Start()
					close(restarted)
				})
			}
		}
	}
	rep, err := loadgen.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-restarted:
	default:
		t.Fatalf("Redis was never restarted: report %+v, statuses %v", rep, oc.status)
	}
	if restartErr != nil {
		t.Fatal(restartErr)
	}
	// While Redis was down the webhooks said 503 (Twilio retries), never
	// anything else: no 500, no 204 for a callback that was not committed.
	for status, n := range oc.status {
		if status != http.StatusNoContent && status != http.StatusServiceUnavailable {
			t.Errorf("%d callbacks answered %d; want only 204 and 503", n, status)
		}
	}
	if oc.status[http.StatusServiceUnavailable] < 50 {
		t.Fatalf("statuses %v; want at least 50 answered 503 while Redis was down", oc.status)
	}
	checkAcked(t, w, oc.acked)
	oc.retryFailed(t, o)
	checkComplete(t, w, o)
}

func TestWebReplicaKilledLosesNothing(t *testing.T) {
	url := redistest.ForTest(t)
	// Two replicas behind one public URL, as behind a load balancer.
	const public = "https://visitflow.example"
	ns := redistest.Namespace(t)
	a := startWeb(t, url, ns, public)
	b := startWeb(t, url, ns, public)
	ctx := context.Background()
	base := loadgen.Options{PublicBaseURL: public, AuthToken: authToken, APIToken: apiToken,
		Visits: 8, Senders: 8, Callbacks: 800}
	oa, ob := base, base
	oa.BaseURL, oa.RunID = a.URL, "a"
	ob.BaseURL, ob.RunID = b.URL, "b"
	for _, o := range []loadgen.Options{oa, ob} {
		if err := loadgen.Setup(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	// Kill replica a (drop its connections and stop it) once it has
	// acknowledged 100 callbacks; b keeps serving its own senders.
	var ocA, ocB outcomes
	var kill sync.Once
	oa.OnResult = func(c loadgen.Callback, status int) {
		ocA.record(c, status)
		ocA.mu.Lock()
		n := len(ocA.acked)
		ocA.mu.Unlock()
		if n >= 100 {
			kill.Do(func() { go func() { a.Server.CloseClientConnections(); a.Server.Close() }() })
		}
	}
	ob.OnResult = ocB.record
	var wg sync.WaitGroup
	for _, o := range []loadgen.Options{oa, ob} {
		wg.Add(1)
		go func(o loadgen.Options) {
			defer wg.Done()
			if _, err := loadgen.Run(ctx, o); err != nil {
				t.Error(err)
			}
		}(o)
	}
	wg.Wait()
	if len(ocA.failed) == 0 {
		t.Fatalf("replica a answered everything (%v); the kill did not happen under load", ocA.status)
	}
	if len(ocB.failed) != 0 {
		t.Fatalf("replica b refused %d callbacks (%v); want none", len(ocB.failed), ocB.status)
	}
	// Whatever a acknowledged before it died is committed; what it did not
	// acknowledge, Twilio retries, and the surviving replica takes it.
	checkAcked(t, b, append(ocA.acked, ocB.acked...))
	oa.BaseURL = b.URL
	ocA.retryFailed(t, oa)
	checkComplete(t, b, oa)
	checkComplete(t, b, ob)
}

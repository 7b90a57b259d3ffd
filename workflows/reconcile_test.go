package workflows_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// lossyCallbacks carries the emulator's callbacks to the app and loses
// those lose matches, as Twilio loses callbacks: the app never sees them.
// It keeps what it lost for a late delivery (Replay).
type lossyCallbacks struct {
	next http.RoundTripper

	mu   sync.Mutex
	lose func(form url.Values) bool
	lost []*lostCallback
	seen chan struct{} // one value per callback lost
}

type lostCallback struct {
	url    string
	header http.Header
	body   []byte
}

func newLossyCallbacks(lose func(form url.Values) bool) *lossyCallbacks {
	return &lossyCallbacks{next: http.DefaultTransport, lose: lose, seen: make(chan struct{}, 1000)}
}

func (l *lossyCallbacks) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Method != http.MethodPost {
		return l.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	form, _ := url.ParseQuery(string(body))
	l.mu.Lock()
	lose := l.lose != nil && l.lose(form)
	if lose {
		l.lost = append(l.lost, &lostCallback{url: r.URL.String(), header: r.Header.Clone(), body: body})
	}
	l.mu.Unlock()
	if lose {
		l.seen <- struct{}{}
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r, Header: http.Header{}}, nil
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	return l.next.RoundTrip(r2)
}

// waitLost waits until n callbacks were lost.
func (l *lossyCallbacks) waitLost(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(testenv.WaitLimit)
	for range n {
		select {
		case <-l.seen:
		case <-deadline:
			t.Fatalf("waiting for %d callbacks to be lost: timed out", n)
		}
	}
}

// replay delivers the lost callbacks late, signed as they were.
func (l *lossyCallbacks) replay(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	lost := l.lost
	l.lost = nil
	l.mu.Unlock()
	for _, c := range lost {
		req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = c.header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatalf("replaying a lost callback: %v", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("replaying a lost callback = %d; want 2xx", resp.StatusCode)
		}
	}
}

func videoEvent(names ...string) func(url.Values) bool {
	return func(f url.Values) bool {
		for _, n := range names {
			if f.Get("StatusCallbackEvent") == n {
				return true
			}
		}
		return false
	}
}

const reconcileEvery = time.Minute

// newReconcileEnv is visitflow end to end (HTTP, workers, the emulator as
// Twilio) whose callbacks pass through lossy, with a fake clock for the
// engine so a test decides when callbacks "went quiet".
func newReconcileEnv(t *testing.T, lossy *lossyCallbacks, opts ...testenv.Option) (*testenv.Env, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC())
	e := newLegEnv(t, append([]testenv.Option{
		testenv.WithClock(clk),
		testenv.WithSandbox(func(o *sandbox.Options) { o.HTTPClient = &http.Client{Transport: lossy, Timeout: 15 * time.Second} }),
		testenv.Configure(func(cfg *config.Config) { cfg.Twilio.ReconcileInterval = reconcileEvery }),
	}, opts...)...)
	return e, clk
}

// reconcile runs one reconciliation pass as the scheduler's task would.
func reconcile(t *testing.T, e *testenv.Env) workflows.ReconcileReport {
	t.Helper()
	rep, err := e.Engine.Reconcile(context.Background())
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return rep
}

// openRoom creates visit id now and gives it its room, returning the room name.
func openRoom(t *testing.T, e *testenv.Env, id string) string {
	t.Helper()
	v := createAt(e, id, time.Now().Add(time.Minute))
	if _, err := workflows.EnsureRoom(e.Engine, context.Background(), id); err != nil {
		t.Fatalf("ensure room: %v", err)
	}
	// The emulator posts room-created in its own time. Landing after the
	// test moved its clock on, it would date the visit's last callback
	// after the move, and reconcile would rightly skip the visit as busy.
	sid := e.Visit(id).Room.SID
	e.WaitEvent("room-created of "+id, func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "room-created" && ev.SID == sid && !ev.Retrying
	})
	return v.Room.Name
}

func countEntries(tl []visit.Entry, source, typ string) int {
	n := 0
	for _, en := range tl {
		if en.Source == source && en.Type == typ {
			n++
		}
	}
	return n
}

// A visit whose participant-disconnected and room-ended callbacks never
// arrived is read back from Twilio once its callbacks went quiet: it
// completes (with its follow-up), the facts say twilio.rest, and the late
// callbacks, when they do arrive, change nothing.
func TestReconcileCompletesAVisitWhoseEndingCallbacksWereLost(t *testing.T) {
	lossy := newLossyCallbacks(videoEvent("participant-disconnected", "room-ended"))
	e, clk := newReconcileEnv(t, lossy)
	room := openRoom(t, e, "V-lost-end")
	e.Sandbox.Join(t, room, "pat-8812")
	e.Sandbox.Join(t, room, "dr-lee")
	e.WaitVisit("V-lost-end", "in progress", func(v handlers.VisitView) bool { return v.State == "in_progress" })

	// Twilio ends the room (its timeout, someone else's REST call): every
	// callback about it is lost.
	rv, err := e.Sandbox.Client.Room(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Twilio.EndRoom(context.Background(), rv.SID); err != nil {
		t.Fatal(err)
	}
	lossy.waitLost(t, 3) // two disconnects and the room's end

	if rep := reconcile(t, e); rep.Read != 0 {
		t.Fatalf("reconcile while callbacks were recent = %+v; want nothing read", rep)
	}
	if v := e.Visit("V-lost-end"); v.State != "in_progress" {
		t.Fatalf("state before the callbacks went quiet = %s; want in_progress", v.State)
	}

	clk.Advance(reconcileEvery + time.Second)
	rep := reconcile(t, e)
	if rep.Read != 1 || rep.Facts != 3 {
		t.Fatalf("reconcile = %+v; want one visit read and 3 facts (two disconnects, room ended)", rep)
	}
	v := e.Visit("V-lost-end")
	if v.State != "completed" {
		t.Fatalf("state after reconcile = %s; want completed; timeline %+v", v.State, v.Timeline)
	}
	if countEntries(v.Timeline, visit.SourceREST, "room-ended") != 1 ||
		countEntries(v.Timeline, visit.SourceREST, "participant-disconnected") != 2 {
		t.Fatalf("timeline %+v; want the room's end and two disconnects from twilio.rest", v.Timeline)
	}
	if ids := e.ScheduledIDs(workflows.QueueDefault); !containsSuffix(ids, ":followup") {
		t.Fatalf("scheduled default tasks %v; want the follow-up", ids)
	}

	// The lost callbacks arrive after all: nothing changes, nothing twice.
	before := twilioFacts(v.Timeline)
	lossy.replay(t)
	after := e.Visit("V-lost-end")
	if after.State != "completed" || twilioFacts(after.Timeline) != before {
		t.Fatalf("after the late callbacks: state %s, timeline %+v; want completed and still %d facts from Twilio", after.State, after.Timeline, before)
	}

	// Settled with Twilio: later runs leave the visit alone.
	clk.Advance(reconcileEvery + time.Second)
	if rep := reconcile(t, e); rep.Visits != 0 {
		t.Fatalf("reconcile after the visit finished = %+v; want no visit looked at", rep)
	}
}

// twilioFacts counts the timeline entries that record what Twilio said.
func twilioFacts(tl []visit.Entry) int {
	n := 0
	for _, en := range tl {
		if strings.HasPrefix(en.Source, "twilio.") {
			n++
		}
	}
	return n
}

func containsSuffix(ids []string, suffix string) bool {
	for _, id := range ids {
		if len(id) >= len(suffix) && id[len(id)-len(suffix):] == suffix {
			return true
		}
	}
	return false
}

// A patient who is in the room but whose participant-connected callback was
// lost is not a no-show: the no-show check asks Twilio who is in the room.
func TestNoShowCheckAsksTwilioWhoIsInTheRoom(t *testing.T) {
	lossy := newLossyCallbacks(func(f url.Values) bool {
		return f.Get("StatusCallbackEvent") == "participant-connected" && f.Get("ParticipantIdentity") == "pat-8812"
	})
	e, _ := newReconcileEnv(t, lossy)
	room := openRoom(t, e, "V-silent-pat")
	e.Sandbox.Join(t, room, "pat-8812")
	lossy.waitLost(t, 1)
	if v := e.Visit("V-silent-pat"); v.State != "scheduled" {
		t.Fatalf("state with the patient's connect lost = %s; want scheduled", v.State)
	}

	e.RunTask(workflows.TypeNoShowCheck, workflows.Payload{VisitID: "V-silent-pat"})
	v := e.Visit("V-silent-pat")
	if v.State != "waiting" {
		t.Fatalf("state after the no-show check = %s; want waiting (the patient is in the room)", v.State)
	}
	if countEntries(v.Timeline, visit.SourceREST, "participant-connected") != 1 || testenv.TimelineHas(v, "no-show", "") {
		t.Fatalf("timeline %+v; want the patient's connect from twilio.rest and no no-show", v.Timeline)
	}
}

// An interpreter call that ended without its completed callback would keep
// the leg live for good; reconciliation reads the call and ends the leg, so
// the provider can ask again.
func TestReconcileEndsAnInterpreterLegWhoseCompletedWasLost(t *testing.T) {
	lossy := newLossyCallbacks(func(f url.Values) bool { return f.Get("CallStatus") == "completed" })
	e, clk := newReconcileEnv(t, lossy)
	room := openRoom(t, e, "V-lost-leg")
	e.Sandbox.Join(t, room, "dr-lee")
	if code := e.API(http.MethodPost, "/v1/visits/V-lost-leg/interpreter", map[string]string{"line": "voyce-es"}, nil); code != http.StatusAccepted {
		t.Fatalf("POST interpreter = %d; want 202", code)
	}
	v := e.WaitVisit("V-lost-leg", "interpreter bridged", func(v handlers.VisitView) bool {
		return v.Interpreter != nil && v.Interpreter.State == "bridged"
	})
	if err := e.Twilio.HangUp(context.Background(), v.Interpreter.CallSID); err != nil {
		t.Fatal(err)
	}
	lossy.waitLost(t, 1)
	// The hang-up also takes the interpreter out of the room. Its Video
	// callback must be in before the clock moves on: arriving after, it
	// would make the visit's callbacks look like they are still flowing,
	// and reconcile would rightly leave the visit for later.
	e.WaitVisit("V-lost-leg", "the interpreter's Video disconnect", func(v handlers.VisitView) bool {
		for _, en := range v.Timeline {
			if en.Source == visit.SourceVideo && en.Type == "participant-disconnected" {
				return true
			}
		}
		return false
	})
	if code := e.API(http.MethodPost, "/v1/visits/V-lost-leg/interpreter", map[string]string{"line": "voyce-es"}, nil); code != http.StatusConflict {
		t.Fatalf("second request before reconcile = %d; want 409 (the leg still looks live)", code)
	}

	clk.Advance(reconcileEvery + time.Second)
	reconcile(t, e)
	v = e.Visit("V-lost-leg")
	if v.Interpreter.State != "ended" || countEntries(v.Timeline, visit.SourceREST, "call-completed") != 1 {
		t.Fatalf("leg %+v, timeline %+v; want ended by a call-completed from twilio.rest", v.Interpreter, v.Timeline)
	}
	if code := e.API(http.MethodPost, "/v1/visits/V-lost-leg/interpreter", map[string]string{"line": "voyce-es"}, nil); code != http.StatusAccepted {
		t.Fatalf("second request after reconcile = %d; want 202", code)
	}
}

// A dial-out whose request got a 5xx or no answer is never simply dialled
// again: the claim stays, the call's own callbacks adopt it, and after the
// claim timeout the retry asks Twilio. One call per attempt, whatever went wrong.
func TestInterpreterDialAmbiguousOutcomePlacesOneCall(t *testing.T) {
	for _, mode := range []string{"refuse", "fail-after-accept", "timeout-after-accept"} {
		t.Run(mode, func(t *testing.T) {
			clk := clock.NewFake(time.Now().UTC())
			e := testenv.New(t,
				testenv.WithSandbox(func(o *sandbox.Options) { o.MinuteLength = 1200 * time.Millisecond }),
				testenv.Configure(func(cfg *config.Config) {
					cfg.Visits.EmptyRoomTimeout, cfg.Visits.UnusedRoomTimeout = time.Hour, time.Hour
					cfg.Twilio.RequestTimeout = 300 * time.Millisecond
					cfg.Interpreter.Lines = map[string]config.InterpreterLine{"voyce-es": {Phone: interpreterPhone, IVR: "1#"}}
				}))
			worker := e.NewEngine(func(d *workflows.Deps) {
				d.Twilio, d.Clock = e.NewTwilio(flakyCreates(t, e.Sandbox.URL, "/Calls.json", mode)), clk
			})
			createAt(e, "V-amb-dial", time.Now().Add(time.Minute))
			if _, err := workflows.EnsureRoom(e.Engine, context.Background(), "V-amb-dial"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Engine.RequestInterpreter(context.Background(), "V-amb-dial", "voyce-es"); err != nil {
				t.Fatal(err)
			}
			p := workflows.Payload{VisitID: "V-amb-dial", Request: 1, Attempt: 1}
			if err := testenv.Process(worker, workflows.TypeInterpreterDial, p); err == nil {
				t.Fatal("dial without a clear answer returned nil; want an error so Asynq retries")
			}
			if mode != "refuse" {
				e.WaitEvent("the placed call's first callback", func(ev sandbox.Event) bool {
					return ev.Kind == sandbox.KindVoiceStatus && ev.Name == "initiated"
				})
			}
			_ = testenv.Process(worker, workflows.TypeInterpreterDial, p) // a retry while the claim is fresh
			clk.Advance(time.Minute)
			if err := testenv.Process(worker, workflows.TypeInterpreterDial, p); err != nil {
				t.Fatalf("retry after the claim timeout = %v; want settled", err)
			}
			if err := testenv.Process(worker, workflows.TypeInterpreterDial, p); err != nil {
				t.Fatalf("one more retry = %v; want nil", err)
			}
			if n := len(e.CallsTo(interpreterPhone)); n != 1 {
				t.Fatalf("calls to the interpreter line = %d; want exactly 1", n)
			}
			e.WaitVisit("V-amb-dial", "the leg tracking that call", func(v handlers.VisitView) bool {
				return v.Interpreter != nil && v.Interpreter.CallSID == e.CallsTo(interpreterPhone)[0].SID
			})
		})
	}
}

// TestReconcileConvergesWith30PercentOfCallbacksLost plays many whole visits
// (patient and provider join, the provider drops and rejoins, both leave,
// the room ends) while 30 % of the Video callbacks are lost, and requires
// every visit to end as it would with full delivery within two reconcile
// intervals of its room's end.
func TestReconcileConvergesWith30PercentOfCallbacksLost(t *testing.T) {
	const visits = 24
	var mu sync.Mutex
	handled := map[string]map[string]int{} // room → event → callbacks handled (lost or not)
	lost, total := 0, 0
	lossy := newLossyCallbacks(func(f url.Values) bool {
		ev := f.Get("StatusCallbackEvent")
		if ev == "" {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		room := f.Get("RoomName")
		if handled[room] == nil {
			handled[room] = map[string]int{}
		}
		handled[room][ev]++
		total++
		// A deterministic 30 %: by a hash of what identifies the callback.
		h := fnv.New32a()
		h.Write([]byte(room + ev + f.Get("ParticipantSid")))
		if h.Sum32()%100 < 30 {
			lost++
			return true
		}
		return false
	})
	restGets := new(atomic.Int32)
	// Twilio's clock moves 100 ms each time it is read, so every event of a
	// visit played in microseconds still has its own moment, as it would in
	// a real visit (else a provider who left and rejoined within one
	// millisecond would never have overlapped the patient); slow enough that
	// no room reaches its unused timeout meanwhile.
	base, tick := time.Now().UTC().Truncate(time.Second), new(atomic.Int64)
	twilioNow := func() time.Time { return base.Add(time.Duration(tick.Add(1)) * 100 * time.Millisecond) }
	e, clk := newReconcileEnv(t, lossy, testenv.WithSandbox(func(o *sandbox.Options) { o.Now = twilioNow }), testenv.WrapSandbox(func(emu http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/Rooms/") {
				restGets.Add(1)
			}
			emu.ServeHTTP(w, r)
		})
	}))
	ctx := context.Background()
	rooms := make([]string, visits)
	var wg sync.WaitGroup
	for i := range visits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("V-drop-%d", i)
			rooms[i] = openRoom(t, e, id)
			c := e.Sandbox.Client
			steps := []func() error{
				func() error { _, err := c.Join(ctx, rooms[i], "pat-8812"); return err },
				func() error { _, err := c.Join(ctx, rooms[i], "dr-lee"); return err },
				func() error { _, err := c.Leave(ctx, rooms[i], "dr-lee"); return err },
				func() error { _, err := c.Join(ctx, rooms[i], "dr-lee"); return err },
				func() error { _, err := c.Leave(ctx, rooms[i], "dr-lee"); return err },
				func() error { _, err := c.Leave(ctx, rooms[i], "pat-8812"); return err },
				func() error {
					rv, err := c.Room(ctx, rooms[i])
					if err != nil {
						return err
					}
					return e.Twilio.EndRoom(ctx, rv.SID)
				},
			}
			for _, step := range steps {
				if err := step(); err != nil {
					t.Errorf("visit %s: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	e.Eventually("every room's callbacks sent", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rooms {
			if handled[r]["room-ended"] < 1 || handled[r]["participant-disconnected"] < 3 {
				return false
			}
		}
		return true
	})
	for range 2 {
		clk.Advance(reconcileEvery + time.Second)
		reconcile(t, e)
	}
	converged := 0
	for i := range visits {
		v := e.Visit(fmt.Sprintf("V-drop-%d", i))
		if v.State == "completed" {
			converged++
		} else {
			t.Errorf("visit %s: state %s; want completed; timeline %+v", v.ID, v.State, v.Timeline)
		}
	}
	mu.Lock()
	t.Logf("visits %d, Video callbacks %d, lost %d (%.0f %%), converged %d; REST room reads %d (%.1f per visit)",
		visits, total, lost, 100*float64(lost)/float64(total), converged, restGets.Load(), float64(restGets.Load())/visits)
	mu.Unlock()
}

// When Twilio's REST API cannot be read, the visit says so once in its
// timeline (the board lists it under failures), keeps being tried, and says
// when reading works again.
func TestReconcileFailureIsShownOnceAndRecovers(t *testing.T) {
	lossy := newLossyCallbacks(nil)
	e, clk := newReconcileEnv(t, lossy)
	openRoom(t, e, "V-rest-down")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"code":20503,"message":"Service Unavailable: details for nobody","status":503}`))
	}))
	t.Cleanup(down.Close)
	cut := e.NewEngine(func(d *workflows.Deps) { d.Twilio, d.Clock = e.NewTwilio(down.URL), clk })
	for range 2 {
		clk.Advance(reconcileEvery + time.Second)
		if rep, err := cut.Reconcile(context.Background()); err != nil || rep.Failed != 1 {
			t.Fatalf("reconcile with Twilio down = %+v, %v; want one failed visit", rep, err)
		}
	}
	tl := e.Timeline("V-rest-down")
	failed := testenv.Entries(tl, "reconcile-failed")
	if len(failed) != 1 || strings.Contains(failed[0].Summary, "details for nobody") {
		t.Fatalf("reconcile-failed entries %+v; want one, in our words", failed)
	}
	clk.Advance(reconcileEvery + time.Second)
	if rep := reconcile(t, e); rep.Read != 1 || rep.Failed != 0 {
		t.Fatalf("reconcile with Twilio back = %+v; want one visit read", rep)
	}
	if got := testenv.Entries(e.Timeline("V-rest-down"), "reconcile-recovered"); len(got) != 1 {
		t.Fatalf("reconcile-recovered entries %+v; want one", got)
	}
}

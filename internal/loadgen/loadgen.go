// Package loadgen drives a running visitflow with signed Twilio Video
// participant callbacks for many concurrent visits, at a given rate or flat
// out, and measures throughput and latency. `visitflow load` is its command
// line; the webhook benchmark and the fault tests use it too.
//
// Each visit has one sender that posts, in order, participant-connected then
// participant-disconnected for a new ParticipantSid, alternating patient and
// provider, so every callback adds a fact that can be checked afterwards:
// an acknowledged (204) connect must appear as a participant of its visit.
// With Options.Plan every visit receives the same planned sequence instead
// (RealisticVisit, LargeVisit), room-ended included.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/visitflow/visitflow/internal/twiliosig"
)

// Options describe a run.
type Options struct {
	// BaseURL is where requests go (http://127.0.0.1:8080).
	BaseURL string
	// PublicBaseURL is what signatures are computed over: visitflow's
	// http.public_base_url. Empty means BaseURL.
	PublicBaseURL string
	// AuthToken is the Twilio auth token visitflow verifies with.
	AuthToken string
	// APIToken is the scheduling API's bearer token, for Setup.
	APIToken string
	// RunID makes visit ids unique per run ("L<RunID>-<n>"); Setup and Run
	// must be given the same one (NewRunID makes one).
	RunID string
	// Visits is the number of visits; Senders (default: Visits) post
	// concurrently, each working through its share of the visits in turn.
	Visits  int
	Senders int
	// Callbacks is the total number of callbacks to send, spread evenly.
	// With a Plan it is Visits × len(Plan) and need not be given.
	Callbacks int
	// Plan, when set, is the sequence of callbacks every visit receives.
	Plan []Step
	// Rate caps callbacks per second across all senders; 0 is flat out.
	Rate float64
	// Client sends the requests; nil uses a client sized for Visits.
	Client *http.Client
	// Wire, in Run, prepares every callback's request (form, signature)
	// before the clock starts and sends them over plain keep-alive
	// connections of the generator's own, one per sender, instead of
	// through Client: as wrk does, so the generator takes less of the
	// machine from the server it measures (wire.go).
	Wire bool
	// OnResult, when set, sees every callback's outcome (status 0 = no
	// answer); it is called from the senders concurrently.
	OnResult func(Callback, int)
}

// Callback is one participant event the generator sent.
type Callback struct {
	VisitID        string
	Event          string // participant-connected or participant-disconnected
	ParticipantSID string
	Identity       string
	Seq            int // position in the visit's sequence
}

// Report is what a run measured.
type Report struct {
	Sent        int
	Acked       int // 204
	Unavailable int // 503
	Other       int // other statuses and transport errors
	Elapsed     time.Duration
	P50         time.Duration
	P90         time.Duration
	P99         time.Duration
	Max         time.Duration
}

// PerSecond is the acknowledged callbacks per second.
func (r Report) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// String is the report as `visitflow load` prints it.
func (r Report) String() string {
	return fmt.Sprintf("sent %d  acked(204) %d  503 %d  other %d  in %v\nthroughput %.0f callbacks/s\nlatency p50 %v  p90 %v  p99 %v  max %v",
		r.Sent, r.Acked, r.Unavailable, r.Other, r.Elapsed.Round(time.Millisecond), r.PerSecond(),
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
}

// NewRunID returns a run id unlikely to repeat, so a run's visits are new.
func NewRunID() string { return fmt.Sprintf("%x", time.Now().UnixNano()%(1<<40)) }

// VisitID is the id of visit n of the run.
func (o Options) VisitID(n int) string { return fmt.Sprintf("L%s-%d", o.RunID, n) }

func (o *Options) defaults() error {
	if o.BaseURL == "" {
		return errors.New("loadgen: base URL is required")
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.PublicBaseURL == "" {
		o.PublicBaseURL = o.BaseURL
	}
	o.PublicBaseURL = strings.TrimRight(o.PublicBaseURL, "/")
	if o.Visits <= 0 {
		o.Visits = 1
	}
	if len(o.Plan) > 0 {
		o.Callbacks = o.Visits * len(o.Plan)
	}
	if o.Senders <= 0 || o.Senders > o.Visits {
		o.Senders = o.Visits
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: o.Senders * 2, MaxIdleConnsPerHost: o.Senders * 2, IdleConnTimeout: time.Minute,
		}}
	}
	return nil
}

// Setup creates the run's visits through the scheduling API, scheduled now.
func Setup(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	at := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	var wg sync.WaitGroup
	errs := make([]error, o.Senders)
	for k := 0; k < o.Senders; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			for n := k; n < o.Visits && errs[k] == nil; n += o.Senders {
				errs[k] = o.create(ctx, o.VisitID(n), at)
			}
		}(k)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (o Options) create(ctx context.Context, id, at string) error {
	body, _ := json.Marshal(map[string]any{
		"id": id, "scheduled_at": at, "timezone": "UTC",
		"provider": map[string]string{"identity": "prov-" + id},
		"patient":  map[string]string{"identity": "pat-" + id},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL+"/v1/visits", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("loadgen: create %s: %w", id, err)
	}
	req.Header.Set("Authorization", "Bearer "+o.APIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("loadgen: create %s: %w", id, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loadgen: create %s: status %d", id, resp.StatusCode)
	}
	return nil
}

// Run sends o.Callbacks callbacks from o.Visits concurrent senders and
// reports what happened. It stops early when ctx ends.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.defaults(); err != nil {
		return Report{}, err
	}
	var tokens <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer t.Stop()
		tokens = t.C
	}
	var (
		mu        sync.Mutex
		rep       Report
		latencies = make([]time.Duration, 0, o.Callbacks)
		wg        sync.WaitGroup
	)
	var prepared [][][]byte
	if o.Wire {
		var err error
		if prepared, err = o.prepare(); err != nil {
			return Report{}, err
		}
	}
	start := time.Now()
	for k := 0; k < o.Senders; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			post := func(_ int, _ int, c Callback) int { return o.post(ctx, c) }
			if o.Wire {
				w := newWireConn(o.BaseURL)
				defer w.close()
				post = func(n, i int, _ Callback) int { return w.post(ctx, prepared[n][i]) }
			}
			for n := k; n < o.Visits; n += o.Senders {
				o.sendVisit(ctx, n, tokens, post, func(c Callback, status int, took time.Duration) {
					mu.Lock()
					rep.Sent++
					switch status {
					case http.StatusNoContent:
						rep.Acked++
						latencies = append(latencies, took)
					case http.StatusServiceUnavailable:
						rep.Unavailable++
					default:
						rep.Other++
					}
					mu.Unlock()
					if o.OnResult != nil {
						o.OnResult(c, status)
					}
				})
			}
		}(k)
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	rep.P50, rep.P90, rep.P99 = percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99)
	if len(latencies) > 0 {
		rep.Max = latencies[len(latencies)-1]
	}
	return rep, ctx.Err()
}

// callbacks is visit n's share of the callbacks, in order.
func (o Options) callbacks(n int) []Callback {
	count := o.Callbacks / o.Visits
	if n < o.Callbacks%o.Visits {
		count++
	}
	if len(o.Plan) > 0 {
		count = len(o.Plan)
	}
	id := o.VisitID(n)
	cs := make([]Callback, count)
	for i := range cs {
		cs[i] = callbackFor(id, i)
		if len(o.Plan) > 0 {
			cs[i] = callbackOf(id, i, o.Plan[i])
		}
	}
	return cs
}

// sendVisit posts visit n's callbacks in order, each once the one before
// was answered; post sends callback i of visit n.
func (o Options) sendVisit(ctx context.Context, n int, tokens <-chan time.Time, post func(n, i int, c Callback) int, done func(Callback, int, time.Duration)) {
	for i, c := range o.callbacks(n) {
		if tokens != nil {
			select {
			case <-tokens:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		t0 := time.Now()
		status := post(n, i, c)
		done(c, status, time.Since(t0))
	}
}

// callbackFor is the i-th callback of a visit: connect then disconnect of
// participant i/2, patients on even pairs and providers on odd ones.
func callbackFor(id string, i int) Callback {
	pair := i / 2
	c := Callback{VisitID: id, ParticipantSID: fmt.Sprintf("PA%s%08d", sidHex(id), pair), Seq: i}
	c.Identity = "pat-" + id
	if pair%2 == 1 {
		c.Identity = "prov-" + id
	}
	c.Event = "participant-connected"
	if i%2 == 1 {
		c.Event = "participant-disconnected"
	}
	return c
}

// sidHex makes the ParticipantSid unique per visit (Twilio SIDs are 34
// characters; the content does not matter to visitflow).
func sidHex(id string) string {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return fmt.Sprintf("%016x%08x", h, len(id))
}

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Resend posts c again, as Twilio retries a callback that was not
// acknowledged (same idempotency token), and returns the status (0: no answer).
func Resend(ctx context.Context, o Options, c Callback) int {
	if err := o.defaults(); err != nil {
		return 0
	}
	return o.post(ctx, c)
}

func (o Options) post(ctx context.Context, c Callback) int {
	r := o.signed(c)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL+r.path, strings.NewReader(r.body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(twiliosig.Header, r.signature)
	req.Header.Set("I-Twilio-Idempotency-Token", r.token)
	resp, err := o.Client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// signedCallback is what Twilio would post for a Callback: the path with
// visitflow's ?visit= hint, the form, its signature and the idempotency token.
type signedCallback struct {
	path, body, signature, token string
}

func (o Options) signed(c Callback) signedCallback {
	i := c.Seq
	path := "/twilio/video/status?visit=" + url.QueryEscape(c.VisitID)
	at := base.Add(time.Duration(i) * time.Second)
	p := url.Values{
		"AccountSid":          {"AC00000000000000000000000000000000"},
		"RoomName":            {"visit-" + c.VisitID},
		"RoomSid":             {"RM" + sidHex(c.VisitID) + "00000000"},
		"RoomStatus":          {"in-progress"},
		"RoomType":            {"group"},
		"StatusCallbackEvent": {c.Event},
		"Timestamp":           {at.Format("2006-01-02T15:04:05.000Z")},
		"SequenceNumber":      {fmt.Sprint(i)},
	}
	if c.ParticipantSID != "" {
		p.Set("ParticipantSid", c.ParticipantSID)
		p.Set("ParticipantIdentity", c.Identity)
		p.Set("ParticipantStatus", strings.TrimPrefix(c.Event, "participant-"))
	}
	switch c.Event {
	case "participant-disconnected":
		p.Set("ParticipantDuration", "1")
	case "room-ended":
		p.Set("RoomStatus", "completed")
		p.Set("RoomDuration", fmt.Sprint(i))
	}
	return signedCallback{path: path, body: p.Encode(),
		signature: twiliosig.Sign(o.AuthToken, o.PublicBaseURL+path, p),
		token:     c.VisitID + "-" + fmt.Sprint(i)}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

package sandbox_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
	"go.uber.org/zap/zaptest"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

const (
	testAccount = "AC0123456789abcdef0123456789abcdef"
	testToken   = "0123456789abcdef0123456789abcdef"
	ourNumber   = "+15005550006"
	waitLimit   = 10 * time.Second
)

// hit is one request the emulator made to "our app".
type hit struct {
	Method string
	Path   string
	Query  url.Values
	Form   url.Values
	Valid  bool // X-Twilio-Signature checked independently (twilio-go's validator)
}

// app plays visitflow's webhook side: it checks signatures with an
// implementation independent of the emulator's, records every request, and
// answers TwiML where a test registered some.
type app struct {
	t     *testing.T
	srv   *httptest.Server
	mu    sync.Mutex
	hits  []hit
	ready chan struct{}
	twiml map[string]func(form url.Values) string
	fails map[string]int // path → how many more requests answer 503
	idem  []string       // I-Twilio-Idempotency-Token of every request, in order
}

func newApp(t *testing.T) *app {
	a := &app{t: t, ready: make(chan struct{}), twiml: map[string]func(url.Values) string{}, fails: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) url(pathAndQuery string) string { return a.srv.URL + pathAndQuery }

// failNext makes the next n requests to path answer 503 (a Redis blip).
func (a *app) failNext(path string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fails[path] = n
}

// answer registers the TwiML served at path.
func (a *app) answer(path string, f func(form url.Values) string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.twiml[path] = f
}

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	full := a.srv.URL + r.URL.RequestURI()
	rv := client.NewRequestValidator(testToken)
	sig := r.Header.Get("X-Twilio-Signature")
	var valid bool
	if r.Method == http.MethodPost {
		valid = rv.ValidateBody(full, body, sig)
	} else {
		valid = rv.Validate(full, map[string]string{}, sig)
		form = r.URL.Query()
	}
	h := hit{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Form: form, Valid: valid}
	a.mu.Lock()
	a.hits = append(a.hits, h)
	a.idem = append(a.idem, r.Header.Get("I-Twilio-Idempotency-Token"))
	close(a.ready)
	a.ready = make(chan struct{})
	f := a.twiml[r.URL.Path]
	failing := a.fails[r.URL.Path] > 0
	if failing {
		a.fails[r.URL.Path]--
	}
	a.mu.Unlock()
	if failing && valid {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !valid {
		a.t.Errorf("%s %s: X-Twilio-Signature %q does not validate", r.Method, full, sig)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if f == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, f(form))
}

// waitHit returns the first request (past or future) that matches.
func (a *app) waitHit(desc string, match func(hit) bool) hit {
	a.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for seen := 0; ; {
		a.mu.Lock()
		hits, ready := a.hits[seen:], a.ready
		a.mu.Unlock()
		for _, h := range hits {
			if match(h) {
				return h
			}
		}
		seen += len(hits)
		select {
		case <-ready:
		case <-deadline.C:
			a.t.Fatalf("timed out waiting for %s; got %d requests", desc, seen)
		}
	}
}

// all returns the requests so far that match.
func (a *app) all(match func(hit) bool) []hit {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []hit
	for _, h := range a.hits {
		if match(h) {
			out = append(out, h)
		}
	}
	return out
}

func videoEvent(event, sid string) func(hit) bool {
	return func(h hit) bool {
		return h.Path == "/twilio/video/status" && h.Form.Get("StatusCallbackEvent") == event &&
			(sid == "" || h.Form.Get("RoomSid") == sid)
	}
}

func callStatus(status, sid string) func(hit) bool {
	return func(h hit) bool {
		return h.Path == "/twilio/voice/status" && h.Form.Get("CallStatus") == status &&
			(sid == "" || h.Form.Get("CallSid") == sid)
	}
}

// env is an emulator served like the app serves it (under /sandbox/), a
// twilioapi client pointed at it, and our app receiving its callbacks.
type env struct {
	t    *testing.T
	emu  *sandbox.Emulator
	base string // the emulator's base URL, "…/sandbox"
	api  *twilioapi.Client
	ctl  *sandbox.Client // the control/inspection API
	app  *app
}

func newEnv(t *testing.T, tweak ...func(*sandbox.Options)) *env {
	t.Helper()
	return serveEnv(t, "/sandbox", tweak...)
}

// serveEnv serves the emulator under mount ("" for the root) through
// testenv.ServeSandbox, with our app as its callback target.
func serveEnv(t *testing.T, mount string, tweak ...func(*sandbox.Options)) *env {
	t.Helper()
	a := newApp(t)
	opts := sandbox.Options{
		AccountSID: testAccount, AuthToken: testToken,
		IncomingVoiceURL:       a.url("/twilio/voice/incoming"),
		IncomingVoiceStatusURL: a.url("/twilio/voice/status"),
		IncomingSMSURL:         a.url("/twilio/sms/incoming"),
		Log:                    zaptest.NewLogger(t),
		MinuteLength:           600 * time.Millisecond, // a second is 10 ms
	}
	for _, f := range tweak {
		f(&opts)
	}
	sb := testenv.ServeSandbox(t, sandbox.New(opts), mount)
	api, err := twilioapi.New(twilioapi.Config{
		AccountSID: testAccount, AuthToken: testToken, FromNumber: ourNumber,
		APIURL: sb.URL, Timeout: 5 * time.Second,
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, emu: sb.Emulator, base: sb.URL, api: api, ctl: sb.Client, app: a}
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	e.t.Cleanup(cancel)
	return ctx
}

// waitEvent awaits an emulator event.
func (e *env) waitEvent(desc string, match func(sandbox.Event) bool) sandbox.Event {
	e.t.Helper()
	ev, err := e.emu.WaitFor(e.ctx(), match)
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", desc, err)
	}
	return ev
}

func verb(sid, name string) func(sandbox.Event) bool {
	return func(ev sandbox.Event) bool {
		return ev.SID == sid && ev.Kind == sandbox.KindVoiceVerb && ev.Name == name
	}
}

func emuStatus(kind, name, sid string) func(sandbox.Event) bool {
	return func(ev sandbox.Event) bool {
		return ev.Kind == kind && ev.Name == name && (sid == "" || ev.SID == sid)
	}
}

// restForm sends a raw REST request to the emulator with basic auth.
func (e *env) restForm(method, path string, form url.Values, user, pass string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

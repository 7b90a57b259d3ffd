// Package browsertest drives a headless Chromium for tests that must see a
// page as a person would: click, wait for text, take screenshots, and
// collect every JavaScript error. It speaks the DevTools protocol over
// --remote-debugging-pipe (JSON messages separated by NUL bytes on file
// descriptors 3 and 4), so it needs neither a WebSocket library nor a
// browser download: only Debian's chromium.
//
// Chromium is found on PATH (chromium, chromium-browser). Where it is
// missing the test is skipped, saying why; with CI=true (CI installs it) it
// fails instead. Like net/http/httptest it is imported by tests only.
package browsertest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// WaitLimit bounds every wait.
const WaitLimit = 30 * time.Second

// Path returns the browser's path, skipping (or, with CI=true, failing) t
// when there is none.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; CI must install it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed: skipping the browser test (apt-get install -y chromium to run it; CI=true makes this a failure)")
	return ""
}

// DumpDOM loads url in a fresh headless Chromium and returns the DOM after
// load, as a person's browser would render it (extra adds flags, e.g.
// --virtual-time-budget=5000 for pages that render with scripts).
func DumpDOM(t testing.TB, url string, extra ...string) string {
	t.Helper()
	bin := Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, "--dump-dom", url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v\n%s", url, err, stderr.String())
	}
	return string(out)
}

// Options configure the browser.
type Options struct {
	// FakeMedia gives pages a fake camera and microphone and grants them
	// without asking.
	FakeMedia bool
	// MediaBlocked gives pages the fake camera and microphone but refuses
	// them, as a person tapping "Block" does.
	MediaBlocked bool
}

// Browser is one headless Chromium for one test; it stops when the test ends.
type Browser struct {
	t   testing.TB
	cmd *exec.Cmd
	w   *os.File

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan message
	pages   map[string]*Page // by session id
	dead    error
}

type message struct {
	ID        int                       `json:"id,omitempty"`
	Method    string                    `json:"method,omitempty"`
	Params    json.RawMessage           `json:"params,omitempty"`
	Result    json.RawMessage           `json:"result,omitempty"`
	Error     *struct{ Message string } `json:"error,omitempty"`
	SessionID string                    `json:"sessionId,omitempty"`
}

// Start launches Chromium for t.
func Start(t testing.TB, o Options) *Browser {
	t.Helper()
	bin := Path(t)
	toChrome, ours, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	theirs, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--no-default-browser-check", "--disable-dev-shm-usage",
		"--autoplay-policy=no-user-gesture-required", "--user-data-dir=" + t.TempDir()}
	switch {
	case o.MediaBlocked:
		args = append(args, "--use-fake-device-for-media-stream")
	case o.FakeMedia:
		args = append(args, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
	}
	cmd := exec.Command(bin, append(args, "about:blank")...)
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fd 3: its input, fd 4: its output
	// Its own process group, so the renderer and helper processes stop with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toChrome.Close()
	fromChrome.Close()
	b := &Browser{t: t, cmd: cmd, w: ours, waiting: map[int]chan message{}, pages: map[string]*Page{}}
	go b.read(theirs)
	if o.MediaBlocked {
		b.deny("camera", "microphone")
	}
	t.Cleanup(func() {
		_ = b.call("", "Browser.close", nil, nil)
		ours.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return b
}

// read dispatches Chromium's answers and events until the pipe closes.
func (b *Browser) read(r *os.File) {
	rd := bufio.NewReaderSize(r, 1<<20)
	for {
		raw, err := rd.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.dead = fmt.Errorf("chromium closed the pipe: %w", err)
			for _, ch := range b.waiting {
				close(ch)
			}
			b.waiting = map[int]chan message{}
			b.mu.Unlock()
			return
		}
		var m message
		if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.waiting[m.ID]; ok {
				delete(b.waiting, m.ID)
				ch <- m
			}
		} else if p := b.pages[m.SessionID]; p != nil {
			p.event(m)
		}
		b.mu.Unlock()
	}
}

// call sends one command (to session, "" for the browser) and returns its result.
func (b *Browser) call(session, method string, params any, result any) error {
	if params == nil {
		params = struct{}{}
	}
	b.mu.Lock()
	if b.dead != nil {
		b.mu.Unlock()
		return b.dead
	}
	b.nextID++
	id := b.nextID
	ch := make(chan message, 1)
	b.waiting[id] = ch
	p, _ := json.Marshal(params)
	raw, _ := json.Marshal(message{ID: id, Method: method, Params: p, SessionID: session})
	_, err := b.w.Write(append(raw, 0))
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: chromium exited", method)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-time.After(WaitLimit):
		return fmt.Errorf("%s: no answer within %s", method, WaitLimit)
	}
}

// deny refuses every page the permissions named (DevTools names).
func (b *Browser) deny(permissions ...string) {
	b.t.Helper()
	for _, name := range permissions {
		if err := b.call("", "Browser.setPermission", map[string]any{"permission": map[string]string{"name": name}, "setting": "denied"}, nil); err != nil {
			b.t.Fatal(err)
		}
	}
}

// Viewport is a page's screen.
type Viewport struct {
	Width, Height int
	Scale         float64
	Mobile        bool
}

// Phone is a common phone screen (390×844 CSS pixels at 2×, touch).
var Phone = Viewport{Width: 390, Height: 844, Scale: 2, Mobile: true}

// Page is one tab.
type Page struct {
	b       *Browser
	t       testing.TB
	target  string
	session string

	// guarded by b.mu
	problems []string
	loads    int
	document string // the URL last navigated to
}

// NewPage opens a tab with viewport vp.
func (b *Browser) NewPage(vp Viewport) *Page {
	b.t.Helper()
	var created struct{ TargetID string }
	if err := b.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		b.t.Fatal(err)
	}
	var attached struct{ SessionID string }
	if err := b.call("", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		b.t.Fatal(err)
	}
	p := &Page{b: b, t: b.t, target: created.TargetID, session: attached.SessionID}
	b.mu.Lock()
	b.pages[p.session] = p
	b.mu.Unlock()
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		p.must(m, nil, nil)
	}
	p.must("Emulation.setDeviceMetricsOverride", map[string]any{"width": vp.Width, "height": vp.Height,
		"deviceScaleFactor": vp.Scale, "mobile": vp.Mobile}, nil)
	if vp.Mobile {
		p.must("Emulation.setTouchEmulationEnabled", map[string]any{"enabled": true}, nil)
	}
	return p
}

func (p *Page) must(method string, params, result any) {
	p.t.Helper()
	if err := p.b.call(p.session, method, params, result); err != nil {
		p.t.Fatal(err)
	}
}

// event records what a test must know of a page: loads and every error a
// person with the console open would see (uncaught exceptions,
// console.error, browser log errors other than a failed load of the
// document itself, which is how a 404 or 410 page arrives).
func (p *Page) event(m message) {
	switch m.Method {
	case "Page.loadEventFired":
		p.loads++
	case "Runtime.exceptionThrown":
		var e struct {
			ExceptionDetails struct {
				Text      string
				Exception struct{ Description string }
			}
		}
		_ = json.Unmarshal(m.Params, &e)
		p.problems = append(p.problems, "exception: "+e.ExceptionDetails.Text+" "+e.ExceptionDetails.Exception.Description)
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		_ = json.Unmarshal(m.Params, &e)
		if e.Type == "error" || e.Type == "assert" {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value, a.Description))
			}
			p.problems = append(p.problems, "console.error: "+strings.Join(parts, " "))
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct{ Source, Level, Text, URL string }
		}
		_ = json.Unmarshal(m.Params, &e)
		if e.Entry.Level == "error" && !(e.Entry.Source == "network" && e.Entry.URL == p.document) {
			p.problems = append(p.problems, e.Entry.Source+": "+e.Entry.Text+" "+e.Entry.URL)
		}
	}
}

// Navigate loads url and waits for its load event.
func (p *Page) Navigate(url string) {
	p.t.Helper()
	p.b.mu.Lock()
	before := p.loads
	p.document = url
	p.b.mu.Unlock()
	var nav struct{ ErrorText string }
	p.must("Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		p.t.Fatalf("navigate %s: %s", url, nav.ErrorText)
	}
	p.waitUntil(func() string { return "the load of " + url }, func() bool {
		p.b.mu.Lock()
		defer p.b.mu.Unlock()
		return p.loads > before
	})
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value into out (nil: ignore it).
func (p *Page) Eval(expr string, out any) {
	p.t.Helper()
	if err := p.eval(expr, out); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Page) eval(expr string, out any) error {
	var res struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	err := p.b.call(p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("eval %q: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(res.Result.Value) > 0 {
		return json.Unmarshal(res.Result.Value, out)
	}
	return nil
}

// Text is the visible text of the first element matching selector ("" when none).
func (p *Page) Text(selector string) string {
	p.t.Helper()
	var s string
	p.Eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e&&!e.closest("[hidden]")?e.innerText:""})()`, selector), &s)
	return s
}

// Exists reports whether an element matches selector.
func (p *Page) Exists(selector string) bool {
	p.t.Helper()
	var ok bool
	p.Eval(fmt.Sprintf(`document.querySelector(%q)!==null`, selector), &ok)
	return ok
}

// Visible reports whether an element matching selector is shown.
func (p *Page) Visible(selector string) bool {
	p.t.Helper()
	var ok bool
	p.Eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q);return !!e&&!e.closest("[hidden]")&&e.getClientRects().length>0})()`, selector), &ok)
	return ok
}

// Click clicks the first element matching selector, as a tap would.
func (p *Page) Click(selector string) {
	p.t.Helper()
	var ok bool
	p.Eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q);if(!e)return false;e.click();return true})()`, selector), &ok)
	if !ok {
		p.t.Fatalf("click %s: no such element", selector)
	}
}

// WaitText waits until the text of selector contains want, failing with
// what it shows instead.
func (p *Page) WaitText(selector, want string) {
	p.t.Helper()
	var last string
	p.waitUntil(func() string { return fmt.Sprintf("%s to say %q (it says %q)", selector, want, last) }, func() bool {
		var s string
		_ = p.eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e&&!e.closest("[hidden]")?e.innerText:""})()`, selector), &s)
		last = s
		return strings.Contains(s, want)
	})
}

// waitUntil polls cond (the page changes without telling us) until it
// holds; after WaitLimit it fails naming what().
func (p *Page) waitUntil(what func() string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(WaitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Screenshot saves the viewport as a PNG at path.
func (p *Page) Screenshot(path string) {
	p.t.Helper()
	var shot struct{ Data string }
	p.must("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// Problems returns the JavaScript errors the page has shown so far.
func (p *Page) Problems() []string {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// Close closes the tab the way a person closing it would (unload handlers run).
func (p *Page) Close() {
	p.t.Helper()
	p.must("Page.close", nil, nil)
}

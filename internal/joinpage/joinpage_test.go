package joinpage_test

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/browsertest"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

// screenshots saves the browser test's pictures of the page's states in a
// directory (the docs keep them: go test ./internal/joinpage -run Browser
// -screenshots ../../docs/images).
var screenshots = flag.String("screenshots", "", "directory to save the join page's screenshots in")

// newSandboxEnv is visitflow in sandbox mode as `go run ./cmd/visitflow`
// serves it: the emulator plays Twilio and is mounted under /sandbox of the
// app, where the page's script joins its rooms; workers send the SMS.
func newSandboxEnv(t *testing.T, configure ...func(*config.Config)) *testenv.Env {
	t.Helper()
	opts := []testenv.Option{testenv.WithSandbox(nil), testenv.WithWorkers(),
		testenv.Server(func(e *testenv.Env, d *handlers.Deps) { d.Sandbox = e.Sandbox.Emulator.Handler() })}
	for _, f := range configure {
		opts = append(opts, testenv.Configure(f))
	}
	return testenv.New(t, opts...)
}

var linkPattern = regexp.MustCompile(`https?://\S+/join/[A-Za-z0-9_-]+`)

// visitSoon creates visit id five minutes from now, inside the smallest
// reminder offset, so the starting-soon SMS goes out at once; it returns
// the join link that SMS carries.
func visitSoon(t *testing.T, e *testenv.Env, id string) string {
	t.Helper()
	body := testenv.VisitBody(id)
	body["scheduled_at"] = time.Now().Add(5 * time.Minute).UTC().Truncate(time.Second).Format(time.RFC3339)
	e.CreateVisit(body)
	var link string
	e.Eventually("the patient's SMS with the join link", func() bool {
		for _, m := range e.SMSTo(testenv.PatientPhone) {
			if strings.Contains(m.Body, "/join/") {
				link = linkPattern.FindString(m.Body)
			}
		}
		return link != ""
	})
	if !strings.HasPrefix(link, e.URL+"/join/") {
		t.Fatalf("join link %q is not under the app's public_base_url %s", link, e.URL)
	}
	return link
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func statusURL(link string) string {
	return strings.Replace(link, "/join/", "/v1/join/", 1) + "/status"
}

// noPHI fails when what shows a phone number or the patient's name.
func noPHI(t *testing.T, what, s string) {
	t.Helper()
	for _, phi := range []string{testenv.PatientPhone, testenv.ProviderPhone, "5551230", "Sam", "pat-8812"} {
		if strings.Contains(s, phi) {
			t.Errorf("%s shows %q:\n%s", what, phi, s)
		}
	}
}

func TestJoinPageAndStatusShowOnlyWhatTheSMSSaid(t *testing.T) {
	e := newSandboxEnv(t)
	link := visitSoon(t, e, "V-phi")

	code, page := get(t, link)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d; want 200", link, code)
	}
	for _, want := range []string{"Your video visit with Dr. Lee", "EST", `id="join-button"`, "/join/assets/join.js"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "twilio-video") {
		t.Errorf("the sandbox page loads the Twilio Video SDK")
	}
	noPHI(t, "the join page", page)

	e.Sandbox.Join(t, "visit-V-phi", "pat-8812")
	e.WaitVisit("V-phi", "waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
	code, body := get(t, statusURL(link))
	if code != http.StatusOK {
		t.Fatalf("status = %d; want 200: %s", code, body)
	}
	noPHI(t, "the status route", body)
	var st struct {
		Role, With, When, Phase string
		YouAreIn                bool   `json:"you_are_in"`
		ProviderHere            bool   `json:"provider_here"`
		WaitingSince            string `json:"waiting_since"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Role != "patient" || st.With != "Dr. Lee" || st.Phase != "open" || !st.YouAreIn || st.ProviderHere || st.WaitingSince == "" {
		t.Errorf("status = %s; want the waiting patient's view", body)
	}

	// The provider's own link, from the patient-waiting SMS: the same page
	// in the provider's role, and still no name of the patient's.
	var providerLink string
	e.Eventually("the provider's patient-waiting SMS", func() bool {
		for _, m := range e.SMSTo(testenv.ProviderPhone) {
			providerLink = linkPattern.FindString(m.Body)
		}
		return providerLink != ""
	})
	code, body = get(t, statusURL(providerLink))
	noPHI(t, "the provider's status", body)
	if code != http.StatusOK || !strings.Contains(body, `"role":"provider"`) || !strings.Contains(body, `"with":"your patient"`) ||
		!strings.Contains(body, `"patient_here":true`) {
		t.Errorf("provider's status = %d %s; want the provider's view with the patient in", code, body)
	}
	if _, page := get(t, providerLink); !strings.Contains(page, "Your video visit with your patient") {
		t.Errorf("the provider's page does not address the provider:\n%s", page)
	} else {
		noPHI(t, "the provider's page", page)
	}

	e.API(http.MethodPost, "/v1/visits/V-phi/cancel", nil, nil)
	if code, page := get(t, link); code != http.StatusGone || !strings.Contains(page, "This visit was cancelled") ||
		strings.Contains(page, "join-button") || strings.Contains(page, "<script") {
		t.Errorf("cancelled link: %d\n%s\nwant 410 saying so, with no button and no script", code, page)
	}
	if code, body := get(t, statusURL(link)); code != http.StatusOK || !strings.Contains(body, `"phase":"cancelled"`) {
		t.Errorf("cancelled status = %d %s; want phase cancelled", code, body)
	}
	for _, bad := range []string{"/join/not-a-real-invite", "/join/", "/join/a/b"} {
		if code, page := get(t, e.URL+bad); code != http.StatusNotFound || strings.Contains(page, "join-button") {
			t.Errorf("GET %s = %d; want 404 without a join button", bad, code)
		}
	}
	if code, _ := get(t, e.URL+"/v1/join/not-a-real-invite/status"); code != http.StatusNotFound {
		t.Errorf("status of an unknown invite = %d; want 404", code)
	}
}

func TestJoinPageOfAnExpiredInvite(t *testing.T) {
	e := newSandboxEnv(t, func(c *config.Config) { c.Visits.AccessWindow = time.Second })
	body := testenv.VisitBody("V-exp")
	// A few seconds ahead: the link's SMS is sent by a job, which must run
	// before the window closes even on a loaded machine.
	body["scheduled_at"] = time.Now().Add(5 * time.Second).UTC().Truncate(time.Second).Format(time.RFC3339)
	e.CreateVisit(body)
	var link string
	e.Eventually("the join link", func() bool {
		for _, m := range e.SMSTo(testenv.PatientPhone) {
			link = linkPattern.FindString(m.Body)
		}
		return link != ""
	})
	e.Eventually("the window to pass", func() bool {
		code, page := get(t, link)
		return code == http.StatusGone && strings.Contains(page, "This link has expired")
	})
}

// TestPatientJoinsFromTheSMSOnAPhone plays the patient's side in a headless
// Chromium with a phone's screen and a fake camera and microphone: the link
// from the emulator's SMS, the device check, joining the emulator's room,
// the waiting room, the provider arriving, leaving by closing the tab, and
// the page of the cancelled visit, with no JavaScript error anywhere.
func TestPatientJoinsFromTheSMSOnAPhoneInBrowser(t *testing.T) {
	e := newSandboxEnv(t)
	b := browsertest.Start(t, browsertest.Options{FakeMedia: true})
	link := visitSoon(t, e, "V-phone")
	shot := screenshotter(t)

	p := b.NewPage(browsertest.Phone)
	p.Navigate(link)
	p.WaitText("#heading", "Your video visit with Dr. Lee")
	p.WaitText("#devices", "Your camera and microphone are working.")
	var playing bool
	p.Eval(`new Promise(function(r){var v=document.getElementById("preview");var f=function(){r(v.videoWidth>0)};if(v.videoWidth>0){f()}else{v.onloadeddata=f;setTimeout(f,5000)}})`, &playing)
	if !playing {
		t.Errorf("the camera preview shows no picture")
	}
	if !p.Visible("#join-button") {
		t.Fatalf("no join button on the open invite's page")
	}
	shot(p, "join-1-before-joining.png")

	p.Click("#join-button")
	p.WaitText("#status", "You are in the waiting room. Dr. Lee will be with you soon.")
	e.WaitVisit("V-phone", "the patient waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
	p.WaitText("#waited", "You have been waiting")
	if p.Visible("#join-button") || !p.Visible("#leave-button") {
		t.Errorf("after joining the page should offer Leave, not Join")
	}
	shot(p, "join-2-waiting-room.png")

	e.Sandbox.Join(t, "visit-V-phone", "dr-lee")
	p.WaitText("#status", "Dr. Lee has joined. Your visit has started.")
	e.WaitVisit("V-phone", "in progress", func(v handlers.VisitView) bool { return v.State == "in_progress" })
	shot(p, "join-3-provider-arrived.png")
	checkNoProblems(t, p, "the open visit's page")

	// Closing the tab takes the patient out of the room.
	p.Close()
	e.WaitVisit("V-phone", "the patient gone with the tab", func(v handlers.VisitView) bool { return v.State == "provider_waiting" })

	e.API(http.MethodPost, "/v1/visits/V-phone/cancel", nil, nil)
	q := b.NewPage(browsertest.Phone)
	q.Navigate(link)
	q.WaitText("#heading", "This visit was cancelled")
	if q.Exists("#join-button") || q.Exists("script") {
		t.Errorf("the cancelled visit's page has a join button or a script")
	}
	shot(q, "join-4-cancelled.png")
	checkNoProblems(t, q, "the cancelled visit's page")

	q.Navigate(e.URL + "/join/not-a-real-invite")
	q.WaitText("#heading", "This link is not valid")
	checkNoProblems(t, q, "an unknown invite's page")
}

// TestOpenPageFollowsTheVisitToItsEnd: a patient in the visit when it ends
// sees the page say so, the join button gone, without reloading.
func TestOpenPageFollowsTheVisitToItsEndInBrowser(t *testing.T) {
	e := newSandboxEnv(t)
	b := browsertest.Start(t, browsertest.Options{FakeMedia: true})
	link := visitSoon(t, e, "V-end")
	shot := screenshotter(t)

	p := b.NewPage(browsertest.Phone)
	p.Navigate(link)
	p.Click("#join-button")
	p.WaitText("#status", "You are in the waiting room.")
	e.Sandbox.Join(t, "visit-V-end", "dr-lee")
	p.WaitText("#status", "has joined")
	e.API(http.MethodPost, "/v1/visits/V-end/end", nil, nil)
	p.WaitText("#heading", "This visit has ended")
	if p.Visible("#join-button") || p.Visible("#leave-button") {
		t.Errorf("the ended visit's page still offers to join or leave")
	}
	shot(p, "join-5-ended.png")
	checkNoProblems(t, p, "the page of a visit that ended")
}

func checkNoProblems(t *testing.T, p *browsertest.Page, what string) {
	t.Helper()
	for _, pr := range p.Problems() {
		t.Errorf("%s: %s", what, pr)
	}
}

// screenshotter saves a page's screenshot under -screenshots (else in the
// test's temporary directory, so the capture itself is always exercised).
func screenshotter(t *testing.T) func(p *browsertest.Page, name string) {
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	return func(p *browsertest.Page, name string) {
		t.Helper()
		p.Screenshot(filepath.Join(dir, name))
	}
}

// TestRealModePageLoadsTheVendoredSDKInBrowser: outside sandbox mode the page
// loads the Twilio Video SDK from the binary itself (no CDN) and starts
// without a JavaScript error.
func TestRealModePageLoadsTheVendoredSDKInBrowser(t *testing.T) {
	e := testenv.New(t, testenv.WithSandbox(nil), testenv.WithWorkers()) // the emulator sends the SMS; the page is not told of it
	b := browsertest.Start(t, browsertest.Options{FakeMedia: true})
	link := visitSoon(t, e, "V-real")

	p := b.NewPage(browsertest.Phone)
	p.Navigate(link)
	p.WaitText("#devices", "Your camera and microphone are working.")
	var sdk struct {
		Connect bool     `json:"connect"`
		Version string   `json:"version"`
		Scripts []string `json:"scripts"`
	}
	p.Eval(`({connect: typeof Twilio === "object" && typeof Twilio.Video.connect === "function",
		version: typeof Twilio === "object" ? Twilio.Video.version : "",
		scripts: Array.from(document.scripts).map(function(s){return s.src})})`, &sdk)
	if !sdk.Connect || sdk.Version != "2.36.0" {
		t.Errorf("Twilio.Video on the page: connect %v, version %q; want the vendored 2.36.0", sdk.Connect, sdk.Version)
	}
	for _, src := range sdk.Scripts {
		if !strings.HasPrefix(src, e.URL+"/join/assets/") {
			t.Errorf("the page loads a script from %s; want only its own assets", src)
		}
	}
	if strings.Contains(p.Text("main"), "Sandbox mode") {
		t.Errorf("the real-mode page says it is in sandbox mode")
	}
	checkNoProblems(t, p, "the real-mode page")
}

// TestPageRefreshesItsTokenBeforeItExpiresInBrowser: a token near its end
// (as a 24 h token is after a day) is replaced through the invite, without
// the patient doing anything.
func TestPageRefreshesItsTokenBeforeItExpiresInBrowser(t *testing.T) {
	// The window ends six minutes from now, so the token gets visitflow's
	// least life.
	e := newSandboxEnv(t, func(c *config.Config) { c.Visits.AccessWindow = time.Minute })
	b := browsertest.Start(t, browsertest.Options{FakeMedia: true})
	link := visitSoon(t, e, "V-refresh")

	p := b.NewPage(browsertest.Phone)
	p.Navigate(link)
	// visitflow never issues a token for less than 15 minutes, and the page
	// refreshes one 10 minutes before its end: the page's clock runs six
	// minutes ahead, so its first token already looks near its end. It is
	// set right again once the refresh happened, so the new token is kept.
	var skewed bool
	p.Eval(`(function(){var real=Date.now; window.__skewMs=6*60*1000;
		Date.now=function(){return real()+window.__skewMs}; return true})()`, &skewed)
	p.Click("#join-button")
	p.WaitText("#status", "You are in the waiting room.")
	exchanges := `performance.getEntriesByType("resource").filter(function(r){return r.name===location.origin+"/v1/join/"+location.pathname.split("/").pop()}).length`
	var n int
	deadline := time.Now().Add(browsertest.WaitLimit)
	for p.Eval(exchanges, &n); n < 2; p.Eval(exchanges, &n) {
		if time.Now().After(deadline) {
			t.Fatalf("the page exchanged its invite %d time(s) in %s; want a refresh of the expiring token", n, browsertest.WaitLimit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Eval(`(function(){window.__skewMs=0; return true})()`, &skewed)
	if !p.Visible("#leave-button") {
		t.Errorf("the refresh took the patient out of the visit")
	}
	checkNoProblems(t, p, "the page refreshing its token")
}

// TestRefusedCameraIsExplainedAndJoiningStillWorksInBrowser: a patient who
// taps "Block" is told what that means and how to undo it, and can join.
func TestRefusedCameraIsExplainedAndJoiningStillWorksInBrowser(t *testing.T) {
	e := newSandboxEnv(t)
	b := browsertest.Start(t, browsertest.Options{MediaBlocked: true})
	link := visitSoon(t, e, "V-blocked")

	p := b.NewPage(browsertest.Phone)
	shot := screenshotter(t)
	p.Navigate(link)
	p.WaitText("#devices", "You did not allow the camera or microphone.")
	shot(p, "join-6-camera-blocked.png")
	if !strings.Contains(p.Text("#devices"), "reload this page") {
		t.Errorf("the refusal does not say how to undo it: %q", p.Text("#devices"))
	}
	p.Click("#join-button")
	p.WaitText("#status", "You are in the waiting room.")
	e.WaitVisit("V-blocked", "the patient waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
	checkNoProblems(t, p, "the page with the camera blocked")
}

// TestWaitingRoomSaysTheProviderIsLateInBrowser: once provider-late handling
// fires, the waiting patient's page says the provider is running late.
func TestWaitingRoomSaysTheProviderIsLateInBrowser(t *testing.T) {
	e := newSandboxEnv(t, func(c *config.Config) { c.Visits.ProviderLateAfter = time.Second })
	b := browsertest.Start(t, browsertest.Options{FakeMedia: true})
	body := testenv.VisitBody("V-late")
	body["scheduled_at"] = time.Now().Add(-time.Minute).UTC().Truncate(time.Second).Format(time.RFC3339) // the wait counts from joining
	e.CreateVisit(body)
	invite := struct{ ID string }{}
	if code := e.API(http.MethodPost, "/v1/visits/V-late/invites", map[string]string{"phone": "+15557654321", "name": "Alex", "role": "guest"}, &invite); code != http.StatusCreated {
		t.Fatalf("POST invites = %d", code)
	}
	link := linkPattern.FindString(e.SMSTo("+15557654321")[0].Body)

	p := b.NewPage(browsertest.Phone)
	p.Navigate(link)
	if p.Visible("#late") {
		t.Fatalf("the page says the provider is late before anyone waited")
	}
	e.Sandbox.Join(t, "visit-V-late", "pat-8812") // the patient, from their own phone
	p.Click("#join-button")                       // the guest, from the link
	p.WaitText("#status", "You are in the waiting room.")
	e.Eventually("the provider-late SMS", func() bool { return len(e.SMSTo(testenv.PatientPhone)) > 0 })
	p.WaitText("#late", "Dr. Lee is running a few minutes late. Please stay on this page.")
	checkNoProblems(t, p, "the waiting room of a late provider")
	_, page := get(t, link)
	_, status := get(t, statusURL(link))
	noPHI(t, "a guest's page", page+status)
	if !strings.Contains(status, `"provider_late":true`) || !strings.Contains(status, `"role":"guest"`) {
		t.Errorf("guest's status = %s; want the guest's view with provider_late", status)
	}
}

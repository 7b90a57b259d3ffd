package workflows_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twiliosig"
	"github.com/visitflow/visitflow/twiml"
	"github.com/visitflow/visitflow/workflows"
)

// The dial-in guessing limits, exercised as Twilio drives them: signed
// requests to /twilio/voice/incoming and the <Gather> action, the TwiML
// answers read byte for byte.

// dialInEnv is visitflow without the emulator, on a fake clock, with the
// dial-in limits of the defaults but a small failed-PIN budget, and its log
// observed.
func dialInEnv(t *testing.T, budget int) (*testenv.Env, *clock.Fake, *observer.ObservedLogs) {
	t.Helper()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Hour).Add(time.Minute))
	core, logs := observer.New(zap.InfoLevel)
	e := testenv.New(t, testenv.WithClock(clk),
		testenv.Configure(func(c *config.Config) { c.Visits.DialInFailureBudget = budget }),
		testenv.Engine(func(d *workflows.Deps) { d.Log = zap.New(core) }))
	return e, clk, logs
}

// call is one inbound call as Twilio places it.
type call struct {
	e         *testenv.Env
	sid, from string
	// next is the <Gather action> of the last answer ("" once it hung up).
	next string
}

var callN int

// incoming places a call from from: Twilio fetches /twilio/voice/incoming.
func incoming(e *testenv.Env, from string) (*call, string) {
	e.T.Helper()
	callN++
	c := &call{e: e, sid: fmt.Sprintf("CA%032d", callN), from: from}
	return c, c.post("/twilio/voice/incoming", nil)
}

// enter submits digits to the last answer's <Gather action>.
func (c *call) enter(digits string) string {
	c.e.T.Helper()
	if c.next == "" {
		c.e.T.Fatalf("call %s: no PIN prompt to answer", c.sid)
	}
	return c.post(c.next, url.Values{"Digits": {digits}, "FinishedOnKey": {"#"}})
}

var gatherAction = regexp.MustCompile(`<Gather [^>]*action="([^"]+)"`)

// post sends a signed form request to path and returns the TwiML answer.
func (c *call) post(path string, extra url.Values) string {
	c.e.T.Helper()
	params := url.Values{"CallSid": {c.sid}, "AccountSid": {testenv.AccountSID}, "From": {c.from}, "Caller": {c.from},
		"To": {c.e.Config.Twilio.FromNumber}, "CallStatus": {"in-progress"}, "Direction": {"inbound"}}
	for k, v := range extra {
		params[k] = v
	}
	path = strings.TrimPrefix(strings.ReplaceAll(path, "&amp;", "&"), c.e.Config.HTTP.PublicBaseURL)
	path, _, _ = strings.Cut(path, "#") // connection overrides: Twilio neither sends nor signs them
	resp, body := c.e.Do(http.MethodPost, path, strings.NewReader(params.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", twiliosig.Header, c.e.Sign(path, params))
	if resp.StatusCode != http.StatusOK {
		c.e.T.Fatalf("POST %s = %d %s; want 200 TwiML", path, resp.StatusCode, body)
	}
	c.next = ""
	if m := gatherAction.FindStringSubmatch(string(body)); m != nil {
		c.next = m[1]
	}
	return string(body)
}

var triesParam = regexp.MustCompile(`tries=(\d+)`)

// promptTries is how many PINs the call was offered, and whether it held first.
func promptTries(t *testing.T, doc string) (tries int, held bool) {
	t.Helper()
	m := triesParam.FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("answer %s has no PIN prompt", doc)
	}
	tries, _ = strconv.Atoi(m[1])
	return tries, strings.Contains(doc, "<Pause")
}

// openVisit creates visit id scheduled in at from the fake now, for
// testenv.PatientPhone, with its Group Room created (as the room job and
// Twilio's room-created callback would have done).
func openVisit(e *testenv.Env, clk *clock.Fake, id string, in time.Duration) string {
	e.T.Helper()
	body := testenv.VisitBody(id)
	body["scheduled_at"] = clk.Now().Add(in).Format(time.RFC3339)
	v := e.CreateVisit(body)
	if resp := e.PostSigned("/twilio/video/status?visit="+id, url.Values{
		"StatusCallbackEvent": {"room-created"}, "RoomName": {v.Room.Name}, "RoomSid": {"RM" + fmt.Sprintf("%032d", len(id))},
		"RoomStatus": {"in-progress"}, "RoomType": {"group"}, "AccountSid": {testenv.AccountSID},
		"Timestamp": {clk.Now().Format("2006-01-02T15:04:05.000Z")},
	}); resp.StatusCode != http.StatusNoContent {
		e.T.Fatalf("room-created callback = %d; want 204", resp.StatusCode)
	}
	return v.DialIn.PIN
}

// wrongPIN is a PIN of the default length that no visit holds.
func wrongPIN(i int, taken ...string) string {
	for {
		p := fmt.Sprintf("%09d", 100_000_007*i%1_000_000_000)
		ok := true
		for _, t := range taken {
			ok = ok && p != t
		}
		if ok {
			return p
		}
		i++
	}
}

// TestDialInGuessingCampaignMeetsTheBudget: a campaign from a new caller
// ID on every call (so no per-caller limit ever applies) gets full-speed
// tries only until the failed-PIN budget is used up; then every stranger
// holds and gets one try. The budget running out is logged once, without
// PHI, and counted. A right PIN bridges at once throughout, the patient's
// own phone is never held, and the next window starts afresh.
func TestDialInGuessingCampaignMeetsTheBudget(t *testing.T) {
	const budget = 10
	e, clk, logs := dialInEnv(t, budget)
	pin := openVisit(e, clk, "V-camp", 10*time.Minute)
	bridged := twiml.JoinRoom("visit-V-camp", "dialin-V-camp")

	guesses, limitedCalls := 0, 0
	for i := range 30 {
		c, doc := incoming(e, fmt.Sprintf("+1555888%04d", i))
		tries, held := promptTries(t, doc)
		switch {
		case guesses < budget && (tries != 3 || held):
			t.Fatalf("call %d after %d failed PINs: %d tries, held %v; want 3 at once", i, guesses, tries, held)
		case guesses >= budget && (tries != 1 || !held || !strings.Contains(doc, `<Pause length="30">`)):
			t.Fatalf("call %d after %d failed PINs (budget %d): %d tries, held %v; want one try after a 30 s hold: %s",
				i, guesses, budget, tries, held, doc)
		}
		if held {
			limitedCalls++
		}
		for try := 1; try <= tries; try++ {
			doc = c.enter(wrongPIN(i*3+try, pin))
			guesses++
		}
		if !strings.Contains(doc, "<Hangup>") {
			t.Fatalf("call %d: after its %d tries the answer is %s; want a goodbye", i, tries, doc)
		}

		if i == 20 {
			// Mid-campaign: a stranger's phone holds, but the right PIN
			// bridges on its one try; the patient's phone is not held.
			c, doc := incoming(e, "+15557771111")
			if _, held := promptTries(t, doc); !held {
				t.Fatalf("a stranger mid-campaign was not held: %s", doc)
			}
			if got := c.enter(pin); got != bridged {
				t.Fatalf("right PIN mid-campaign from a stranger = %s; want the bridge %s", got, bridged)
			}
			c, doc = incoming(e, testenv.PatientPhone)
			if tries, held := promptTries(t, doc); tries != 3 || held {
				t.Fatalf("the patient's phone mid-campaign: %d tries, held %v; want 3 at once", tries, held)
			}
			if got := c.enter(pin); got != bridged {
				t.Fatalf("right PIN from the patient's phone = %s; want the bridge", got)
			}
		}
	}
	// 4 calls of 3 guesses reach the budget of 10 (the call in flight
	// finishes its tries), then one guess per call.
	if want := 4*3 + 26; guesses != want || limitedCalls != 26 {
		t.Fatalf("%d guesses checked, %d limited calls; want %d and 26", guesses, limitedCalls, want)
	}
	if got := metric(e, "visitflow_dialin_failed_pins_total"); got != float64(guesses) {
		t.Errorf("visitflow_dialin_failed_pins_total = %v; want %d", got, guesses)
	}
	if got := metric(e, "visitflow_dialin_budget_exhausted_total"); got != 1 {
		t.Errorf("visitflow_dialin_budget_exhausted_total = %v; want 1 (one window)", got)
	}
	if got := metric(e, "visitflow_dialin_limited_calls_total"); got != float64(limitedCalls+1) {
		t.Errorf("visitflow_dialin_limited_calls_total = %v; want %d", got, limitedCalls+1)
	}
	loud := logs.FilterLevelExact(zap.ErrorLevel).FilterMessageSnippet("BUDGET").All()
	if len(loud) != 1 {
		t.Fatalf("%d budget log lines; want exactly one: %v", len(loud), logs.All())
	}
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		if strings.Contains(line, "+1555") || strings.Contains(line, pin) {
			t.Fatalf("log line %q carries a phone number or PIN", line)
		}
	}

	// The next budget window: strangers are asked at full speed again and
	// the right PIN bridges.
	clk.Advance(time.Hour)
	c, doc := incoming(e, "+15557772222")
	if tries, held := promptTries(t, doc); tries != 3 || held {
		t.Fatalf("a stranger in the next window: %d tries, held %v; want 3 at once", tries, held)
	}
	if got := c.enter(pin); got != bridged {
		t.Fatalf("right PIN after the campaign = %s; want the bridge", got)
	}
}

// TestDialInCallerLimitHoldsButLetsTheRightPINThrough: one caller ID that
// keeps failing holds and gets one try, other callers do not; its right
// PIN still bridges.
func TestDialInCallerLimitHoldsButLetsTheRightPINThrough(t *testing.T) {
	e, clk, _ := dialInEnv(t, 1000)
	pin := openVisit(e, clk, "V-lim", 5*time.Minute)
	const fumbler = "+15556660001"
	for i := range 2 {
		c, _ := incoming(e, fumbler)
		for try := 1; try <= 3; try++ {
			c.enter(wrongPIN(i*3+try, pin))
		}
	}
	c, doc := incoming(e, fumbler)
	if tries, held := promptTries(t, doc); tries != 1 || !held {
		t.Fatalf("after 6 failures: %d tries, held %v; want 1 after a hold", tries, held)
	}
	if got := c.enter(pin); got != twiml.JoinRoom("visit-V-lim", "dialin-V-lim") {
		t.Fatalf("the limited caller's right PIN = %s; want the bridge", got)
	}
	if _, doc := incoming(e, "+15556660002"); strings.Contains(doc, "<Pause") {
		t.Fatalf("another caller was held: %s", doc)
	}
	if v := e.Visit("V-lim"); !testenv.TimelineHas(v, "dial-in", "by phone") {
		t.Fatalf("timeline %+v lacks the dial-in by phone", v.Timeline)
	}
}

// TestDialInPINOutsideItsWindowAnswersAsAWrongPIN: to a stranger, the PIN
// of a visit not open yet, and of a cancelled visit, get the very bytes a
// wrong PIN gets, at every try, and are counted against the caller and the
// budget the same way.
func TestDialInPINOutsideItsWindowAnswersAsAWrongPIN(t *testing.T) {
	e, clk, _ := dialInEnv(t, 1000)
	early := openVisit(e, clk, "V-early", 3*time.Hour) // dial-in opens 30 minutes before
	cancelled := openVisit(e, clk, "V-gone", 5*time.Minute)
	if code := e.API(http.MethodPost, "/v1/visits/V-gone/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("cancel = %d", code)
	}
	pins := map[string]string{"wrong": wrongPIN(1, early, cancelled), "not open yet": early, "cancelled": cancelled}
	answers := map[string][]string{}
	for name, pin := range pins {
		from := "+1555444000" + strconv.Itoa(len(answers))
		for call := range 2 {
			c, doc := incoming(e, from)
			for try := 1; try <= 3; try++ {
				doc = c.enter(pin)
				if call == 0 {
					answers[name] = append(answers[name], doc)
				}
			}
		}
		// Two calls of three: the caller is over its limit, as for a wrong PIN.
		if _, held := promptTries(t, mustIncoming(e, from)); !held {
			t.Errorf("%s PIN: 6 entries did not count against the caller", name)
		}
	}
	for try := range 3 {
		for _, name := range []string{"not open yet", "cancelled"} {
			if answers[name][try] != answers["wrong"][try] {
				t.Errorf("try %d, %s PIN answered\n%s\nwant the wrong PIN's\n%s", try+1, name, answers[name][try], answers["wrong"][try])
			}
		}
	}
	if !strings.Contains(answers["wrong"][2], "The time of your visit is in your appointment message") {
		t.Errorf("last answer %s; want the neutral goodbye", answers["wrong"][2])
	}
	if got := metric(e, "visitflow_dialin_failed_pins_total"); got != 18 {
		t.Errorf("visitflow_dialin_failed_pins_total = %v; want 18 (each kind counted alike)", got)
	}
	if v := e.Visit("V-early"); testenv.TimelineHas(v, "dial-in", "") {
		t.Fatalf("a PIN outside its window was accepted: %+v", v.Timeline)
	}
}

// metric reads an unlabelled counter from the server's /metrics.
func metric(e *testenv.Env, name string) float64 {
	e.T.Helper()
	resp, body := e.Do(http.MethodGet, "/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		e.T.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.T.Fatalf("/metrics %q: %v", line, err)
			}
			return f
		}
	}
	e.T.Fatalf("/metrics lacks %s", name)
	return 0
}

func mustIncoming(e *testenv.Env, from string) string {
	e.T.Helper()
	_, doc := incoming(e, from)
	return doc
}

// TestDialInTellsOnlyThePatientPhoneWhenItsVisitIs: the visit's local time
// (or that it has ended) goes to a caller whose caller ID is the visit's
// patient phone, and costs it nothing; a stranger with the same PIN hears
// the wrong-PIN text.
func TestDialInTellsOnlyThePatientPhoneWhenItsVisitIs(t *testing.T) {
	e, clk, logs := dialInEnv(t, 1000)
	pin := openVisit(e, clk, "V-tz", 3*time.Hour)
	ny, _ := time.LoadLocation("America/New_York")
	when := clk.Now().Add(3 * time.Hour).In(ny).Format("Monday, January 2 at 3:04 PM MST")

	c, _ := incoming(e, testenv.PatientPhone)
	if got := c.enter(pin); !strings.Contains(got, "Your visit is scheduled for "+when) || !strings.Contains(got, "<Hangup>") {
		t.Fatalf("the patient's phone, early: %s; want the local time %s and goodbye", got, when)
	}
	if got := metric(e, "visitflow_dialin_failed_pins_total"); got != 0 {
		t.Errorf("the patient's early call counted %v failed PINs; want 0", got)
	}
	c, _ = incoming(e, "+15551230003")
	if got := c.enter(pin); strings.Contains(got, "scheduled for") || !strings.Contains(got, twiml.NoOpenVisit) {
		t.Fatalf("a stranger with the PIN, early: %s; want the wrong-PIN answer", got)
	}
	// Once the visit is over, its patient's phone hears so; a stranger
	// still hears the wrong-PIN text.
	if code := e.API(http.MethodPost, "/v1/visits/V-tz/cancel", nil, nil); code != http.StatusOK {
		t.Fatalf("cancel = %d", code)
	}
	c, _ = incoming(e, testenv.PatientPhone)
	if got := c.enter(pin); !strings.Contains(got, "This visit has ended") {
		t.Fatalf("the patient's phone after the visit: %s; want that it has ended", got)
	}
	c, _ = incoming(e, "+15551230004")
	if got := c.enter(pin); strings.Contains(got, "ended") || !strings.Contains(got, twiml.NoOpenVisit) {
		t.Fatalf("a stranger with the PIN after the visit: %s; want the wrong-PIN answer", got)
	}
	for _, entry := range logs.All() {
		if line := fmt.Sprint(entry.Message, entry.ContextMap()); strings.Contains(line, "555123") {
			t.Fatalf("log line %q carries a phone number", line)
		}
	}
}

// TestDialInPINLength: PINs have visits.dial_in_pin_digits digits and the
// prompt asks for that many.
func TestDialInPINLength(t *testing.T) {
	for _, digits := range []int{9, 6, 12} {
		// One env at a time: each leases a Redis database until it ends.
		t.Run(strconv.Itoa(digits), func(t *testing.T) {
			e := testenv.New(t, testenv.Configure(func(c *config.Config) { c.Visits.DialInPINDigits = digits }))
			v := e.CreateVisit(testenv.VisitBody("V-len"))
			if len(v.DialIn.PIN) != digits || strings.Trim(v.DialIn.PIN, "0123456789") != "" {
				t.Errorf("dial_in_pin_digits %d: PIN %q", digits, v.DialIn.PIN)
			}
			_, doc := incoming(e, "+15551110000")
			if want := fmt.Sprintf("enter your %d digit visit PIN, then press the pound key", digits); !strings.Contains(doc, want) {
				t.Errorf("dial_in_pin_digits %d: prompt %s; want %q", digits, doc, want)
			}
		})
	}
}

// TestDialInRescheduleMovesThePINReservation: a visit moved three days out
// keeps its PIN reserved until its new window can end, so no other visit
// can be given it meanwhile.
func TestDialInRescheduleMovesThePINReservation(t *testing.T) {
	e, clk, _ := dialInEnv(t, 1000)
	pin := openVisit(e, clk, "V-move", time.Hour)
	moved := clk.Now().Add(72 * time.Hour).Format(time.RFC3339)
	if code := e.API(http.MethodPatch, "/v1/visits/V-move", map[string]any{"scheduled_at": moved}, nil); code != http.StatusOK {
		t.Fatalf("PATCH = %d", code)
	}
	if v := e.Visit("V-move"); v.DialIn.PIN != pin {
		t.Fatalf("PIN after the reschedule = %q; want %q kept", v.DialIn.PIN, pin)
	}
	keys := e.AllKeys("*pin:" + pin)
	if len(keys) != 1 {
		t.Fatalf("PIN index keys %v; want one", keys)
	}
	if ttl := e.Conn.Client.PTTL(context.Background(), keys[0]).Val(); ttl < 72*time.Hour {
		t.Fatalf("PIN reserved for %s after moving the visit 72h out; want past its new window", ttl)
	}
}

// TestDialInSilenceUsesATryButIsNoGuess: a caller who enters nothing
// (the Gather timed out) is asked again and eventually let go, but nothing
// is counted against it or the budget.
func TestDialInSilenceUsesATryButIsNoGuess(t *testing.T) {
	e, clk, _ := dialInEnv(t, 1000)
	openVisit(e, clk, "V-quiet", 5*time.Minute)
	c, _ := incoming(e, "+15553330001")
	for try := 1; try <= 3; try++ {
		doc := c.enter("")
		if ended := strings.Contains(doc, "<Hangup>"); ended != (try == 3) {
			t.Fatalf("try %d of silence: %s", try, doc)
		}
	}
	if got := metric(e, "visitflow_dialin_failed_pins_total"); got != 0 {
		t.Fatalf("silence counted %v failed PINs; want 0", got)
	}
}

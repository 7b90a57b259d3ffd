package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// simulate plays a whole visit against a running sandbox-mode server: it
// creates the visit through the API, waits for its room, drives people in
// and out through the emulator's control API, follows the visit and prints
// its timeline. It fails (exit status 1) when the visit does not reach the
// scenario's expected end state before the deadline.
func simulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "base URL of the running server (default: the sandbox session file's, else http://localhost:8080)")
	name := fs.String("scenario", "happy", "scenario to play (--list shows them)")
	token := fs.String("token", "", "API bearer token (default $VISITFLOW_API_TOKEN, else the sandbox session file's)")
	timeout := fs.Duration("timeout", 60*time.Second, "deadline for the whole scenario (default: 60s, or longer when the scenario needs it)")
	line := fs.String("interpreter-line", "voyce-es", "interpreter line the interpreter scenario requests (a line of the server's config)")
	list := fs.Bool("list", false, "list the scenarios and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	registry := scenarioRegistry()
	if *list {
		names := make([]string, 0, len(registry))
		for n := range registry {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stdout, "%-16s %s (ends %s)\n", n, registry[n].About, registry[n].Want)
		}
		return nil
	}
	sc, ok := registry[*name]
	if !ok {
		return fmt.Errorf("simulate: --scenario: no scenario %q (try --list)", *name)
	}

	timeoutSet := false
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if !timeoutSet && sc.MinTimeout > *timeout {
		*timeout = sc.MinTimeout
	}

	session := readSandboxSession()
	s := &simulation{
		base:       firstNonEmpty(*server, session.BaseURL, "http://localhost:8080"),
		token:      firstNonEmpty(*token, getenv("VISITFLOW_API_TOKEN"), session.APIToken),
		accountSID: firstNonEmpty(session.AccountSID, sandboxAccountSID),
		authToken:  firstNonEmpty(session.AuthToken, sandboxAuthToken),
		http:       &http.Client{Timeout: 10 * time.Second},
		out:        stdout,
		started:    time.Now(),
		line:       *line,
	}
	s.base = strings.TrimRight(s.base, "/")
	if s.token == "" {
		return errors.New("simulate: no API token: pass --token, set VISITFLOW_API_TOKEN, or run from the directory of a sandbox-mode server (it writes " + sandboxFile + ")")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return s.play(ctx, sc)
}

// scenario is one scripted visit: steps played in order, and the state the
// visit must end in.
type scenario struct {
	Name  string
	About string
	Steps []step
	Want  visit.State
	// ScheduleIn places scheduled_at this long after now (default 1m, so the
	// room is created at once: visits.room_lead is longer).
	ScheduleIn time.Duration
	// Timezone picks the visit's time zone (default America/New_York).
	Timezone func(now time.Time) string
	// MinTimeout is the scenario's deadline when --timeout is not given and
	// the default is shorter (waits on server-side backoffs).
	MinTimeout time.Duration
}

// step is one thing the outside world does, and the state the visit must
// reach afterwards (empty: do not wait).
type step struct {
	Say  string
	Do   func(ctx context.Context, s *simulation) error
	Then visit.State
}

// scenarioRegistry lists every scenario by name. Feature files add theirs by
// appending one call here (e.g. interpreterScenarios()).
func scenarioRegistry() map[string]scenario {
	all := map[string]scenario{}
	for _, group := range [][]scenario{
		roomScenarios(),
		interpreterScenarios(),
		dialInScenarios(),
		reminderScenarios(),
	} {
		for _, sc := range group {
			all[sc.Name] = sc
		}
	}
	return all
}

// simulation is one scenario being played against a server.
type simulation struct {
	base, token           string
	accountSID, authToken string
	http                  *http.Client
	out                   io.Writer
	started               time.Time
	// line is the interpreter line the interpreter scenario requests.
	line string
	// CallSID is the emulator call a phone scenario placed (dial-in).
	CallSID string

	// Visit is the visit being played, as last fetched.
	Visit simVisit
}

// simVisit is the part of the visit resource simulate reads.
type simVisit struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Provider struct {
		Identity string `json:"identity"`
	} `json:"provider"`
	Patient struct {
		Identity string `json:"identity"`
	} `json:"patient"`
	Room struct {
		Name string `json:"name"`
		SID  string `json:"sid"`
	} `json:"room"`
	ScheduledAt  time.Time               `json:"scheduled_at"`
	Timezone     string                  `json:"timezone"`
	DialIn       visit.DialIn            `json:"dial_in"`
	Interpreter  *visit.InterpreterLeg   `json:"interpreter"`
	Participants []visit.ParticipantView `json:"participants"`
	Timeline     []visit.Entry           `json:"timeline"`
}

// play runs sc and prints what happens; it fails when the visit does not
// reach sc.Want.
func (s *simulation) play(ctx context.Context, sc scenario) error {
	fmt.Fprintf(s.out, "scenario %s: %s\nserver %s\n\n", sc.Name, sc.About, s.base)
	if err := s.createVisit(ctx, sc); err != nil {
		return err
	}
	s.say("visit %s created (room %s); waiting for its room", s.Visit.ID, s.Visit.Room.Name)
	if err := s.await(ctx, func(v simVisit) bool { return v.Room.SID != "" }); err != nil {
		return fmt.Errorf("simulate: the room was never created: %w", err)
	}
	s.say("room %s is ready", s.Visit.Room.SID)
	var failed error
	for _, st := range sc.Steps {
		s.say("%s", st.Say)
		if err := st.Do(ctx, s); err != nil {
			failed = fmt.Errorf("simulate: %s: %w", st.Say, err)
			break
		}
		if st.Then == "" {
			continue
		}
		if err := s.awaitState(ctx, st.Then); err != nil {
			failed = fmt.Errorf("simulate: after %q the visit is %s, not %s: %w", st.Say, s.Visit.State, st.Then, err)
			break
		}
		s.say("  visit is %s", s.Visit.State)
	}
	if failed == nil {
		// Let the worker record the last transition, so the timeline is whole.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = s.await(wctx, func(v simVisit) bool {
			for _, e := range v.Timeline {
				if e.Type == "state-changed" && strings.HasSuffix(e.Summary, "→ "+v.State) {
					return true
				}
			}
			return false
		})
		cancel()
	}
	if err := s.refresh(context.WithoutCancel(ctx)); err == nil {
		s.printTimeline()
	}
	fmt.Fprintf(s.out, "\nend state: %s (expected %s)\n", s.Visit.State, sc.Want)
	if failed != nil {
		return failed
	}
	if s.Visit.State != string(sc.Want) {
		return fmt.Errorf("simulate: visit %s ended %s; scenario %s expects %s", s.Visit.ID, s.Visit.State, sc.Name, sc.Want)
	}
	return nil
}

func (s *simulation) say(format string, args ...any) {
	fmt.Fprintf(s.out, "%7.2fs  %s\n", time.Since(s.started).Seconds(), fmt.Sprintf(format, args...))
}

func (s *simulation) createVisit(ctx context.Context, sc scenario) error {
	in := sc.ScheduleIn
	if in == 0 {
		in = time.Minute
	}
	tz := "America/New_York"
	if sc.Timezone != nil {
		tz = sc.Timezone(time.Now())
	}
	suffix := randomHex(3)
	body := map[string]any{
		"scheduled_at": time.Now().Add(in).UTC().Format(time.RFC3339),
		"timezone":     tz,
		"provider":     map[string]string{"identity": "dr-sim-" + suffix, "name": "Dr. Simulated", "phone": "+15551230001"},
		"patient":      map[string]string{"identity": "pat-sim-" + suffix, "name": "Sam Simulated", "phone": "+15551230002"},
	}
	return s.API(ctx, http.MethodPost, "/v1/visits", body, &s.Visit)
}

// API calls the visitflow API with the bearer token; out, when not nil,
// receives the JSON answer.
func (s *simulation) API(ctx context.Context, method, path string, body, out any) error {
	return s.do(ctx, method, path, body, out, func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+s.token)
	})
}

// Control calls the emulator's control API (path relative to /sandbox).
func (s *simulation) Control(ctx context.Context, method, path string, body, out any) error {
	return s.do(ctx, method, "/sandbox"+path, body, out, nil)
}

func (s *simulation) do(ctx context.Context, method, path string, body, out any, auth func(*http.Request)) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != nil {
		auth(req)
	}
	return s.send(req, out)
}

func (s *simulation) send(req *http.Request, out any) error {
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 300 {
		hint := ""
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(req.URL.Path, "/sandbox") {
			hint = " (is the server in sandbox mode?)"
		}
		return fmt.Errorf("%s %s: %s: %s%s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(b)), hint)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Path, err)
		}
	}
	return nil
}

// Identity is the participant identity of a role of the visit.
func (s *simulation) Identity(role visit.Role) string {
	if role == visit.RoleProvider {
		return s.Visit.Provider.Identity
	}
	return s.Visit.Patient.Identity
}

// EndRoom ends the visit's room through the emulator's REST API, as an
// operator (or Twilio's empty-room timeout) would.
func (s *simulation) EndRoom(ctx context.Context) error {
	return s.twilioREST(ctx, "/v1/Rooms/"+url.PathEscape(s.Visit.Room.SID), url.Values{"Status": {"completed"}})
}

// HangUpCall ends call sid through the emulator's REST API (Status=completed).
func (s *simulation) HangUpCall(ctx context.Context, sid string) error {
	return s.twilioREST(ctx, "/2010-04-01/Accounts/"+url.PathEscape(s.accountSID)+"/Calls/"+url.PathEscape(sid)+".json",
		url.Values{"Status": {"completed"}})
}

// twilioREST POSTs form to the emulator's Twilio REST API with the sandbox credentials.
func (s *simulation) twilioREST(ctx context.Context, path string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/sandbox"+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.accountSID, s.authToken)
	return s.send(req, nil)
}

func (s *simulation) refresh(ctx context.Context) error {
	return s.API(ctx, http.MethodGet, "/v1/visits/"+url.PathEscape(s.Visit.ID), nil, &s.Visit)
}

// await polls the visit until ok holds or ctx ends.
func (s *simulation) await(ctx context.Context, ok func(simVisit) bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.refresh(ctx); err == nil && ok(s.Visit) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *simulation) awaitState(ctx context.Context, want visit.State) error {
	return s.await(ctx, func(v simVisit) bool { return v.State == string(want) })
}

func (s *simulation) printTimeline() {
	fmt.Fprintf(s.out, "\ntimeline of visit %s:\n", s.Visit.ID)
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tSOURCE\tEVENT\tSTATE\tSUMMARY")
	for _, e := range s.Visit.Timeline {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("15:04:05.000"), e.Source, e.Type, e.State, e.Summary)
	}
	_ = tw.Flush()
}

func readSandboxSession() sandboxSession {
	var s sandboxSession
	if b, err := os.ReadFile(sandboxFile); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

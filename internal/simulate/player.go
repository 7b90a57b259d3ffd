package simulate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/visit"
)

// Options says which server a Player plays against and where it prints.
type Options struct {
	// BaseURL is the server's base URL (a trailing slash is ignored).
	BaseURL string
	// Token is the API bearer token.
	Token string
	// AccountSID and AuthToken are the Twilio credentials of the server's
	// emulator, used for its REST API (ending a room, hanging up a call).
	AccountSID, AuthToken string
	// InterpreterLine is the interpreter line the interpreter scenario
	// requests (a line of the server's config).
	InterpreterLine string
	// Out receives the play-by-play and the timeline. Default: io.Discard.
	Out io.Writer
	// HTTP sends every request. Default: a client with a 10s timeout.
	HTTP *http.Client
}

// Player plays scenarios against one server. It holds no state between
// plays, so one Player may play several scenarios at once.
type Player struct {
	opts Options
}

// NewPlayer returns a Player with opts, defaults filled in.
func NewPlayer(opts Options) *Player {
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	return &Player{opts: opts}
}

// Play runs sc, printing what happens, and fails when the visit does not
// reach a step's state or sc.Want before ctx ends.
func (p *Player) Play(ctx context.Context, sc Scenario) error {
	s := &simulation{Options: p.opts, started: time.Now(),
		emulator: sandbox.NewClient(p.opts.BaseURL+"/sandbox", p.opts.HTTP)}
	return s.play(ctx, sc)
}

// simulation is one scenario being played against a server.
type simulation struct {
	Options
	started time.Time
	// emulator is the emulator's control and inspection API under /sandbox.
	emulator *sandbox.Client
	// CallSID is the emulator call a phone scenario placed (dial-in).
	CallSID string

	// Visit is the visit being played, as last fetched.
	Visit simVisit
}

// simVisit is the visit resource as the API answers it; a type of its own
// only to carry the player's small helpers.
type simVisit handlers.VisitView

// play runs sc and prints what happens; it fails when the visit does not
// reach sc.Want.
func (s *simulation) play(ctx context.Context, sc Scenario) error {
	fmt.Fprintf(s.Out, "scenario %s: %s\nserver %s\n\n", sc.Name, sc.About, s.BaseURL)
	if err := s.createVisit(ctx, sc); err != nil {
		return err
	}
	s.say("visit %s created (room %s); waiting for its room", s.Visit.ID, s.Visit.Room.Name)
	if err := s.await(ctx, func(v simVisit) bool { return v.Room.SID != "" }); err != nil {
		return fmt.Errorf("simulate: the room was never created: %w", err)
	}
	s.say("room %s is ready", s.Visit.Room.SID)
	s.showJoinLink(ctx)
	var failed error
	for _, st := range sc.steps {
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
				if e.Type == "state-changed" && strings.HasSuffix(e.Summary, "→ "+string(v.State)) {
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
	fmt.Fprintf(s.Out, "\nend state: %s (expected %s)\n", s.Visit.State, sc.Want)
	if failed != nil {
		return failed
	}
	if s.Visit.State != sc.Want {
		return fmt.Errorf("simulate: visit %s ended %s; scenario %s expects %s", s.Visit.ID, s.Visit.State, sc.Name, sc.Want)
	}
	return nil
}

func (s *simulation) say(format string, args ...any) {
	fmt.Fprintf(s.Out, "%7.2fs  %s\n", time.Since(s.started).Seconds(), fmt.Sprintf(format, args...))
}

func (s *simulation) createVisit(ctx context.Context, sc Scenario) error {
	in := sc.scheduleIn
	if in == 0 {
		in = time.Minute
	}
	tz := "America/New_York"
	if sc.timezone != nil {
		tz = sc.timezone(time.Now())
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

// Identity is the participant identity of a role of the visit.
func (s *simulation) Identity(role visit.Role) string {
	if role == visit.RoleProvider {
		return s.Visit.Provider.Identity
	}
	return s.Visit.Patient.Identity
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
	return s.await(ctx, func(v simVisit) bool { return v.State == want })
}

func (s *simulation) printTimeline() {
	fmt.Fprintf(s.Out, "\ntimeline of visit %s:\n", s.Visit.ID)
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tSOURCE\tEVENT\tSTATE\tSUMMARY")
	for _, e := range s.Visit.Timeline {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("15:04:05.000"), e.Source, e.Type, e.State, e.Summary)
	}
	_ = tw.Flush()
}

// randomHex is n random bytes in hex: it keeps the identities of repeated
// plays apart.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package simulate

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/visit"
)

// Steps and helpers the scenario families share: the room steps (join,
// leave, endRoom, pause), endVisit, and helpers that await a timeline entry
// or an emulator event, hang up a call, and read a message's text.

// join is "role joins the room", then the visit must be in state then.
func join(role visit.Role, then visit.State) step {
	return step{Say: "the " + string(role) + " joins the room", Do: joinDo(role), Then: then}
}

// leave is "role leaves the room", then the visit must be in state then.
func leave(role visit.Role, then visit.State) step {
	return step{Say: "the " + string(role) + " leaves the room", Do: leaveDo(role), Then: then}
}

// endRoom ends the room through the emulator's REST API.
func endRoom(then visit.State) step {
	return step{Say: "the room is ended (Twilio REST, Status=completed)",
		Do: func(ctx context.Context, s *simulation) error { return s.EndRoom(ctx) }, Then: then}
}

func joinDo(role visit.Role) func(context.Context, *simulation) error {
	return func(ctx context.Context, s *simulation) error {
		_, err := s.emulator.Join(ctx, s.Visit.Room.Name, s.Identity(role))
		return inSandbox(err)
	}
}

func leaveDo(role visit.Role) func(context.Context, *simulation) error {
	return func(ctx context.Context, s *simulation) error {
		_, err := s.emulator.Leave(ctx, s.Visit.Room.Name, s.Identity(role))
		return inSandbox(err)
	}
}

// pause lets time pass (a demo shows waiting; nothing depends on it).
func pause(d time.Duration) func(context.Context, *simulation) error {
	return func(ctx context.Context, _ *simulation) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// visitPath is the API path of the visit being played, plus suffix.
func (s *simulation) visitPath(suffix string) string {
	return "/v1/visits/" + url.PathEscape(s.Visit.ID) + suffix
}

// awaitEntry polls the visit until its timeline holds an entry ok accepts,
// and returns it.
func (s *simulation) awaitEntry(ctx context.Context, ok func(visit.Entry) bool) (visit.Entry, error) {
	var found visit.Entry
	err := s.await(ctx, func(v simVisit) bool {
		for _, e := range v.Timeline {
			if ok(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found, err
}

// entryOf matches timeline entries by type and summary prefix.
func entryOf(typ, summaryPrefix string) func(visit.Entry) bool {
	return func(e visit.Entry) bool { return e.Type == typ && strings.HasPrefix(e.Summary, summaryPrefix) }
}

// awaitEvent polls the emulator's events of resource sid until ok accepts one.
func (s *simulation) awaitEvent(ctx context.Context, sid string, ok func(sandbox.Event) bool) (sandbox.Event, error) {
	for {
		if events, err := s.emulator.EventsFor(ctx, sid); err == nil {
			for _, e := range events {
				if ok(e) {
					return e, nil
				}
			}
		}
		if err := pause(50*time.Millisecond)(ctx, s); err != nil {
			return sandbox.Event{}, err
		}
	}
}

// connected reports whether identity is connected to the visit's room.
func (v simVisit) connected(identity string) bool {
	for _, p := range v.Participants {
		if p.Identity == identity && p.Connected {
			return true
		}
	}
	return false
}

// endVisit is "the visit is ended through the API", then the visit must be in state then.
func endVisit(then visit.State) step {
	return step{Say: "the provider ends the visit (POST /v1/visits/{id}/end)", Then: then,
		Do: func(ctx context.Context, s *simulation) error {
			return s.API(ctx, http.MethodPost, s.visitPath("/end"), nil, nil)
		}}
}

// awaitCallEnded polls the emulator until call sid has a terminal status,
// and returns it.
func (s *simulation) awaitCallEnded(ctx context.Context, sid string) (string, error) {
	for {
		if calls, err := s.emulator.Calls(ctx); err == nil {
			for _, c := range calls {
				if c.SID == sid && visit.TerminalCallStatus(c.Status) {
					return c.Status, nil
				}
			}
		}
		if err := pause(50*time.Millisecond)(ctx, s); err != nil {
			return "", err
		}
	}
}

// messageBody is the text of message sid as the emulator received it.
func (s *simulation) messageBody(ctx context.Context, sid string) string {
	if messages, err := s.emulator.Messages(ctx); err == nil {
		for _, m := range messages {
			if m.SID == sid {
				return m.Body
			}
		}
	}
	return "?"
}

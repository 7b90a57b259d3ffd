package workflows

import (
	"context"
	"fmt"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// minTokenLife keeps a token for a visit running late usable for a while.
const minTokenLife = 15 * time.Minute

// maxTokenLife is the longest Twilio accepts (20157 beyond): a token asked
// for earlier than that before the visit expires before it, and the invite
// (or the API) gives a fresh one.
const maxTokenLife = 24 * time.Hour

// Grant is a room-scoped Video access token for one identity. NotBefore,
// when set, is when the token starts working: the room opens then.
type Grant struct {
	Identity  string     `json:"identity"`
	Room      string     `json:"room"`
	Token     string     `json:"token"`
	ExpiresAt time.Time  `json:"expires_at"`
	NotBefore *time.Time `json:"not_before,omitempty"`
}

// windowEnd is when the visit's access tokens and invites stop working.
func (e *Engine) windowEnd(v *visit.Visit) time.Time {
	return v.ScheduledAt.Add(e.cfg.Visits.AccessWindow)
}

// roomOpens is when the visit's room is created: room_lead before it.
func (e *Engine) roomOpens(v *visit.Visit) time.Time {
	return v.ScheduledAt.Add(-e.cfg.Visits.RoomLead)
}

// IssueToken returns a Video access token for the visit's provider or
// patient, limited to the visit's room; see grant for its lifetime.
// Cancelled or finished visits get none (visit.ErrInvalidChange).
func (e *Engine) IssueToken(ctx context.Context, id, role string) (Grant, error) {
	v, err := e.store.Get(ctx, id)
	if err != nil {
		return Grant{}, err
	}
	var identity string
	switch visit.Role(role) {
	case visit.RoleProvider:
		identity = v.Provider.Identity
	case visit.RolePatient:
		identity = v.Patient.Identity
	default:
		return Grant{}, badField("role", `must be "patient" or "provider"`)
	}
	if err := v.RefuseIfFinished("join"); err != nil {
		return Grant{}, err
	}
	return e.grant(ctx, v, identity)
}

// grant issues identity's token for v's room. It lives until the visit
// window ends (at least minTokenLife from now) but at most 24 h, and works
// only from when the room opens: a client that connected earlier would make
// an ad-hoc room of that name, one Twilio reports nothing about. Inside the
// room's window the room exists before the token is returned; earlier, no
// room is created (Twilio would close it unused long before the visit).
func (e *Engine) grant(ctx context.Context, v *visit.Visit, identity string) (Grant, error) {
	now := e.clock.Now()
	until := e.windowEnd(v)
	if soon := now.Add(minTokenLife); until.Before(soon) {
		until = soon
	}
	if latest := now.Add(maxTokenLife); until.After(latest) {
		until = latest
	}
	until = until.UTC().Truncate(time.Second)
	g := Grant{Identity: identity, Room: v.Room.Name, ExpiresAt: until}
	var notBefore time.Time
	if opens := e.roomOpens(v); now.Before(opens) {
		notBefore = opens.UTC().Truncate(time.Second)
		g.NotBefore = &notBefore
	} else if _, err := e.ensureRoom(ctx, v.ID); err != nil {
		return Grant{}, err
	}
	tok, err := e.twilio.AccessToken(identity, v.Room.Name, notBefore, until)
	if err != nil {
		return Grant{}, fmt.Errorf("workflows: token for %s: %w", v.ID, err)
	}
	g.Token = tok
	return g, nil
}

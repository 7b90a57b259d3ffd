package workflows

import (
	"context"
	"fmt"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// minTokenLife keeps a token for a visit running late usable for a while.
const minTokenLife = 15 * time.Minute

// Grant is a room-scoped Video access token for one identity.
type Grant struct {
	Identity  string    `json:"identity"`
	Room      string    `json:"room"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// windowEnd is when the visit's access tokens and invites stop working.
func (e *Engine) windowEnd(v *visit.Visit) time.Time {
	return v.ScheduledAt.Add(e.cfg.Visits.AccessWindow)
}

// IssueToken returns a Video access token for the visit's provider or
// patient, limited to the visit's room and valid until the visit window
// ends (at least minTokenLife from now). The room exists before the token
// is returned. Cancelled or finished visits get none (visit.ErrInvalidChange).
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
	until := e.windowEnd(v)
	if soon := e.clock.Now().Add(minTokenLife); until.Before(soon) {
		until = soon
	}
	return e.grant(ctx, v, identity, until)
}

func (e *Engine) grant(ctx context.Context, v *visit.Visit, identity string, until time.Time) (Grant, error) {
	if _, err := e.ensureRoom(ctx, v.ID); err != nil {
		return Grant{}, err
	}
	until = until.UTC().Truncate(time.Second)
	tok, err := e.twilio.AccessToken(identity, v.Room.Name, until)
	if err != nil {
		return Grant{}, fmt.Errorf("workflows: token for %s: %w", v.ID, err)
	}
	return Grant{Identity: identity, Room: v.Room.Name, Token: tok, ExpiresAt: until}, nil
}

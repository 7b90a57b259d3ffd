package workflows

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

const (
	// inviteIndexGrace keeps an expired invite findable, so a replay is
	// told 410 (gone) rather than 404 (never existed).
	inviteIndexGrace = 7 * 24 * time.Hour
	// inviteSecretBytes is the invite secret's entropy: 192 bits.
	inviteSecretBytes = 24
)

// InviteInput is the body of POST /v1/visits/{id}/invites.
type InviteInput struct {
	Phone string `json:"phone"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// InviteView is what the API answers for a new invite; the secret is only
// ever in the SMS.
type InviteView struct {
	ID        string    `json:"id"`
	Identity  string    `json:"identity"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

// hashInvite is the only form in which an invite secret is kept.
func hashInvite(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateInvite invites a guest (or an interpreter joining by video) and
// sends the join link by SMS. The secret is random, kept only as its hash,
// and works until the visit window ends or the visit is cancelled or ends.
//
// The SMS is sent here rather than from a job because a job would need the
// secret in its payload or in the visit, and the secret must exist only in
// the SMS. If it cannot be sent the invite is revoked and the error returned.
func (e *Engine) CreateInvite(ctx context.Context, id string, in InviteInput) (InviteView, error) {
	if in.Role == "" {
		in.Role = string(visit.RoleGuest)
	}
	switch {
	case !visit.ValidPhone(in.Phone):
		return InviteView{}, badField("phone", "must be an E.164 number like +15551230001")
	case in.Role != string(visit.RoleGuest) && in.Role != string(visit.RoleInterpreter):
		return InviteView{}, badField("role", `must be "guest" or "interpreter"`)
	case len(in.Name) > 200:
		return InviteView{}, badField("name", "must be at most 200 characters")
	}
	v, err := e.store.Get(ctx, id)
	if err != nil {
		return InviteView{}, err
	}
	if err := v.RefuseIfFinished("invite a guest to"); err != nil {
		return InviteView{}, err
	}
	expires := e.windowEnd(v)
	if !e.clock.Now().Before(expires) {
		return InviteView{}, fmt.Errorf("%w: the visit window has passed", visit.ErrInvalidChange)
	}
	secret, err := randomToken(inviteSecretBytes)
	if err != nil {
		return InviteView{}, err
	}
	nonce, err := randomHex(6)
	if err != nil {
		return InviteView{}, err
	}
	hash := hashInvite(secret)
	inv := visit.Invite{Role: in.Role, Identity: "guest-" + nonce, Name: in.Name, Phone: in.Phone, CreatedAt: e.clock.Now()}
	// Index first (store convention): a crash leaves an index entry that
	// points at a visit without the invite, which join treats as unknown.
	if err := e.store.IndexInvite(ctx, hash, v.ID, expires.Add(inviteIndexGrace)); err != nil {
		return InviteView{}, err
	}
	now := e.clock.Now()
	_, v, err = e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		if err := v.RefuseIfFinished("invite a guest to"); err != nil {
			return err
		}
		if v.Invites == nil {
			v.Invites = map[string]visit.Invite{}
		}
		v.Invites[hash] = inv
		v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "invited", Summary: in.Role + " invited (" + inv.Identity + ")"})
		return nil
	})
	if err != nil {
		return InviteView{}, err
	}
	body, err := renderText("invite", e.cfg.Visits.Templates.Invite, e.visitText(v, secret))
	if err == nil {
		_, err = e.twilio.SendSMS(ctx, twilioapi.SendSMSParams{To: in.Phone, Body: body})
	}
	if err != nil && twilioapi.Ambiguous(err) {
		// Twilio may have sent the link: the invite stays valid (revoking
		// it would break a link the guest may hold), and the caller is
		// told the outcome is unknown rather than invited to try again.
		now := e.clock.Now()
		_, _, _ = e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
			v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "invite-sms-unknown",
				Summary: "invite " + inv.Identity + ": SMS outcome unknown (" + twilioFailureText(err) + ")"})
			return nil
		})
		return InviteView{}, fmt.Errorf("workflows: send invite for %s: outcome unknown, the invite stays valid: %w", v.ID, err)
	}
	if err != nil {
		e.revokeInvite(ctx, v.ID, hash)
		if twilioapi.Permanent(err) {
			return InviteView{}, badField("phone", "cannot receive the invitation SMS (Twilio error %d)", twilioapi.Code(err))
		}
		return InviteView{}, fmt.Errorf("workflows: send invite for %s: %w", v.ID, err)
	}
	return InviteView{ID: hash[:16], Identity: inv.Identity, Role: inv.Role, ExpiresAt: expires}, nil
}

func (e *Engine) revokeInvite(ctx context.Context, id, hash string) {
	now := e.clock.Now()
	_, _, _ = e.update(ctx, id, "", now, func(v *visit.Visit) error {
		if inv, ok := v.Invites[hash]; ok && !inv.Revoked {
			inv.Revoked = true
			v.Invites[hash] = inv
			v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "invite-revoked", Summary: "invite " + inv.Identity + " revoked: SMS not sent"})
		}
		return nil
	})
}

// Join exchanges an invite secret for an access token as the invite's
// identity: a guest's or interpreter's own, or the patient's (provider's)
// for the link in the SMS visitflow sends them. An unknown
// secret is visit.ErrNotFound; one that expired, was revoked, or whose visit
// was cancelled or has ended is ErrGone.
func (e *Engine) Join(ctx context.Context, secret string) (Grant, error) {
	v, inv, err := e.invite(ctx, secret)
	if err != nil {
		return Grant{}, err
	}
	if e.inviteGone(v, inv) != "" {
		return Grant{}, ErrGone
	}
	return e.grant(ctx, v, inv.Identity)
}

// invite finds the visit and invite of an invite secret: visit.ErrNotFound
// for a secret never issued, ErrGone for one whose visit was purged.
func (e *Engine) invite(ctx context.Context, secret string) (*visit.Visit, visit.Invite, error) {
	if secret == "" || len(secret) > 128 {
		return nil, visit.Invite{}, visit.ErrNotFound
	}
	hash := hashInvite(secret)
	id, err := e.store.VisitForInvite(ctx, hash)
	if err != nil {
		return nil, visit.Invite{}, err
	}
	audit.Touch(ctx, id) // the invite's visit, which its route does not name
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, visit.ErrNotFound) {
		return nil, visit.Invite{}, ErrGone // purged with its visit
	}
	if err != nil {
		return nil, visit.Invite{}, err
	}
	inv, ok := v.Invites[hash]
	if !ok {
		return nil, visit.Invite{}, visit.ErrNotFound
	}
	return v, inv, nil
}

// inviteGone says why an invite no longer lets anyone in (JoinPhase
// cancelled, ended or expired), or "" while it does.
func (e *Engine) inviteGone(v *visit.Visit, inv visit.Invite) JoinPhase {
	switch {
	case v.State() == visit.Cancelled:
		return JoinCancelled
	case v.Finished():
		return JoinEnded
	case inv.Revoked || !e.clock.Now().Before(e.windowEnd(v)):
		return JoinExpired
	}
	return ""
}

// randomToken is n random bytes, URL-safe base64 (invite secrets).
func randomToken(n int) (string, error) {
	b, err := randomBytes(n)
	return base64.RawURLEncoding.EncodeToString(b), err
}

// randomHex is n random bytes, hex (identity nonces, visit ids).
func randomHex(n int) (string, error) {
	b, err := randomBytes(n)
	return hex.EncodeToString(b), err
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("workflows: random: %w", err)
	}
	return b, nil
}

// joinInvite is the single-visit invite behind the join link of a patient
// or provider SMS: the secret lives only in the attempt sending the message.
type joinInvite struct {
	secret, hash string
}

// newJoinInvite makes an invite secret for v and indexes its hash (index
// first, as CreateInvite does: until store adds it to the visit, the secret
// is unknown to Join). The zero joinInvite means no link.
func (e *Engine) newJoinInvite(ctx context.Context, v *visit.Visit) (joinInvite, error) {
	secret, err := randomToken(inviteSecretBytes)
	if err != nil {
		return joinInvite{}, err
	}
	hash := hashInvite(secret)
	if err := e.store.IndexInvite(ctx, hash, v.ID, e.windowEnd(v).Add(inviteIndexGrace)); err != nil {
		return joinInvite{}, err
	}
	return joinInvite{secret: secret, hash: hash}, nil
}

// store records the invite on v, inside the atomic step that claims the
// SMS, for recipient r: it joins as r's own identity, so the room counts
// the patient (or provider) and not a guest.
func (j joinInvite) store(v *visit.Visit, r visit.Role, now time.Time) {
	if j.hash == "" {
		return
	}
	identity := v.Patient.Identity
	if r == visit.RoleProvider {
		identity = v.Provider.Identity
	}
	if v.Invites == nil {
		v.Invites = map[string]visit.Invite{}
	}
	v.Invites[j.hash] = visit.Invite{Role: string(r), Identity: identity, CreatedAt: now}
}

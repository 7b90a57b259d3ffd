package workflows

import (
	"context"
	"errors"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// JoinPhase is where an invite's visit stands for the person holding it.
type JoinPhase string

// Join phases: open lets them in; the others say why not.
const (
	JoinOpen      JoinPhase = "open"
	JoinCancelled JoinPhase = "cancelled"
	JoinEnded     JoinPhase = "ended"
	JoinExpired   JoinPhase = "expired"
)

// JoinStatus is what the holder of an invite may see of its visit (the join
// page and GET /v1/join/{invite}/status): no more than the SMS that carried
// the link says (whom the visit is with, when) and where the visit stands.
// It carries no phone number and no name but the provider's display name.
type JoinStatus struct {
	// Role is the invite's: patient, provider, guest or interpreter.
	Role string `json:"role"`
	// With is whom the visit is with: the provider's display name (for the
	// provider's own link, "your patient").
	With string `json:"with"`
	// When is the visit's local time in its time zone, as the SMS says it.
	When        string    `json:"when"`
	ScheduledAt time.Time `json:"scheduled_at"`
	Timezone    string    `json:"timezone"`
	Phase       JoinPhase `json:"phase"`
	// ProviderHere and PatientHere: connected to the room now.
	ProviderHere bool `json:"provider_here"`
	PatientHere  bool `json:"patient_here"`
	// YouAreIn: the invite's identity is connected to the room now.
	YouAreIn bool `json:"you_are_in"`
	// WaitingSince is when the patient's current wait for the provider
	// began; nil when the visit is not waiting.
	WaitingSince *time.Time `json:"waiting_since"`
	// ProviderLate: provider-late handling fired during this wait (the
	// provider was told and the patient too).
	ProviderLate bool `json:"provider_late"`
}

// JoinStatus tells the holder of an invite secret where its visit stands.
// An unknown secret is visit.ErrNotFound. For a cancelled, ended or expired
// invite it returns the status (phase saying which) with ErrGone.
func (e *Engine) JoinStatus(ctx context.Context, secret string) (JoinStatus, error) {
	v, inv, err := e.invite(ctx, secret)
	if errors.Is(err, ErrGone) {
		return JoinStatus{Phase: JoinEnded}, err
	}
	if err != nil {
		return JoinStatus{}, err
	}
	text := e.visitText(v, "")
	st := JoinStatus{Role: inv.Role, With: text.Provider, When: text.When,
		ScheduledAt: v.ScheduledAt, Timezone: v.Timezone, Phase: JoinOpen}
	if visit.Role(inv.Role) == visit.RoleProvider {
		st.With = "your patient"
	}
	if gone := e.inviteGone(v, inv); gone != "" {
		st.Phase = gone
		return st, ErrGone
	}
	for _, p := range v.ParticipantList() {
		if !p.Connected {
			continue
		}
		if p.Identity == inv.Identity {
			st.YouAreIn = true
		}
		switch p.Role {
		case visit.RoleProvider:
			st.ProviderHere = true
		case visit.RolePatient:
			st.PatientHere = true
		}
	}
	if since, ok := v.WaitingSince(); ok {
		st.WaitingSince = &since
		st.ProviderLate = firedSince(v, since, "provider-late", "patient-late")
	}
	return st, nil
}

// firedSince reports whether one of the SMS purposes was settled (sent or
// skipped) at or after t.
func firedSince(v *visit.Visit, t time.Time, purposes ...string) bool {
	for _, p := range purposes {
		if at, ok := v.Done[smsKey(p)]; ok && !at.Before(t) {
			return true
		}
	}
	return false
}

package workflows

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/visitflow/visitflow/internal/visit"
)

// The bounds of what one visit may hold. A name or identity goes into every
// callback's read of the visit, into SMS texts and the board, so an
// unbounded one makes every later step slower for everybody.
const (
	// identityMax is Twilio's limit on participant identities.
	identityMax = 128
	// nameMax bounds a person's display name (characters).
	nameMax = 200
)

// checkIdentity refuses an empty, overlong or reserved participant identity.
func checkIdentity(field, identity string) error {
	switch {
	case identity == "":
		return badField(field, "is required")
	case len(identity) > identityMax:
		return badField(field, "must be at most %d characters", identityMax)
	case !utf8.ValidString(identity):
		return badField(field, "must be valid UTF-8")
	case visit.ReservedIdentity(identity):
		return badField(field, "must not start with %q, %q or %q: visitflow names those participants itself",
			visit.ReservedIdentityPrefixes[0], visit.ReservedIdentityPrefixes[1], visit.ReservedIdentityPrefixes[2])
	}
	return nil
}

// checkName refuses an overlong display name.
func checkName(field, name string) error {
	if utf8.RuneCountInString(name) > nameMax {
		return badField(field, "must be at most %d characters", nameMax)
	}
	if !utf8.ValidString(name) {
		return badField(field, "must be valid UTF-8")
	}
	return nil
}

// checkHorizon refuses a scheduled_at further ahead than
// visits.schedule_horizon. Besides being a typing error, a time near the
// end of year 9999 would put the no-show check and the purge past what a
// timestamp can be written as.
func (e *Engine) checkHorizon(at time.Time) error {
	if limit := e.clock.Now().Add(e.cfg.Visits.ScheduleHorizon); at.After(limit) {
		return badField("scheduled_at", "must be at most %s ahead (visits.schedule_horizon)", horizonText(e.cfg.Visits.ScheduleHorizon))
	}
	return nil
}

// horizonText says a horizon in days, the unit people schedule in.
func horizonText(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	if days < 1 {
		return d.String()
	}
	if days == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", days)
}

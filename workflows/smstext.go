package workflows

import (
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// smsText is what every SMS template sees (config.Templates).
type smsText struct {
	Provider, Patient, When, JoinURL, Line string
	Attempts                               int
	// ByPhone: the patient is in the room by the phone dial-in leg only.
	ByPhone bool
	// DialIn is the number to call and PIN the visit's dial-in PIN in
	// groups ("482 913 557").
	DialIn, PIN string
}

// visitText fills the fields every template may use from v: names (with a
// neutral stand-in when unknown), the local date and time in the visit's
// zone, and the join link carrying joinSecret (empty: no link).
func (e *Engine) visitText(v *visit.Visit, joinSecret string) smsText {
	loc, err := loadZone(v.Timezone)
	if err != nil {
		loc = time.UTC
	}
	data := smsText{
		Provider: v.Provider.Name, Patient: v.Patient.Name,
		When:    v.ScheduledAt.In(loc).Format("Mon Jan 2, 2006 at 3:04 PM MST"),
		ByPhone: v.ByPhone(),
		DialIn:  v.DialIn.Number, PIN: groupPIN(v.DialIn.PIN),
	}
	if joinSecret != "" {
		data.JoinURL = e.joinURL(joinSecret)
	}
	if data.Provider == "" {
		data.Provider = "your provider"
	}
	if data.Patient == "" {
		data.Patient = "Your patient"
	}
	return data
}

// joinURL is visits.join_url with an invite secret as its {token}.
func (e *Engine) joinURL(secret string) string {
	return strings.ReplaceAll(e.cfg.JoinURLTemplate(), "{token}", secret)
}

// usesJoinURL reports whether a template shows the join link, so only those
// SMS mint an invite.
func usesJoinURL(tmpl string) bool { return strings.Contains(tmpl, ".JoinURL") }

// renderText executes the SMS template called name with data.
func renderText(name, tmpl string, data smsText) (string, error) {
	t, err := template.New(name).Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("workflows: template %s: %w", name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("workflows: template %s: %w", name, err)
	}
	return b.String(), nil
}

package workflows_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/testenv"
)

// reply has the patient's phone text body to our number, through the
// emulator, which posts it signed to /twilio/sms/incoming.
func reply(t *testing.T, e *testenv.Env, from, body string) {
	t.Helper()
	if _, err := e.Sandbox.Client.IncomingSMS(context.Background(), from, body); err != nil {
		t.Fatal(err)
	}
}

func TestReplyCConfirmsTheVisitTheReminderWasFor(t *testing.T) {
	e := newSMSEnv(t)
	e.StartWorkers(e.Engine)
	// A reply before any SMS went to that number answers nothing.
	reply(t, e, testenv.PatientPhone, "C")
	// Inside the smallest offset: the starting-soon reminder goes at once.
	createAt(e, "V-conf", time.Now().Add(5*time.Minute).Truncate(time.Second))
	e.Eventually("the reminder", func() bool { return len(e.SMSTo(testenv.PatientPhone)) == 1 })
	if v := e.Visit("V-conf"); v.ConfirmedAt != nil || testenv.TimelineHas(v, "confirmed", "") {
		t.Fatalf("a C sent before the reminder confirmed the visit: %v", v.ConfirmedAt)
	}

	reply(t, e, testenv.PatientPhone, " c. ")
	v := e.WaitVisit("V-conf", "confirmed", func(v handlers.VisitView) bool { return v.ConfirmedAt != nil })
	if !testenv.TimelineHas(v, "confirmed", "replied C") {
		t.Errorf("timeline has no confirmed entry: %+v", v.Timeline)
	}
	first := *v.ConfirmedAt
	reply(t, e, testenv.PatientPhone, "C")
	reply(t, e, testenv.PatientPhone, "Running 5 min late, my cough is worse")
	v = e.WaitVisit("V-conf", "the other reply", func(v handlers.VisitView) bool { return testenv.TimelineHas(v, "patient-replied", "") })
	if !v.ConfirmedAt.Equal(first) || len(testenv.Entries(e.Timeline("V-conf"), "confirmed")) != 1 {
		t.Errorf("a second C changed the confirmation: confirmed_at %v → %v", first, v.ConfirmedAt)
	}
	raw, _ := json.Marshal(e.Visit("V-conf"))
	if strings.Contains(string(raw), "cough") || strings.Contains(string(raw), "Running") {
		t.Errorf("the reply's text was stored: %s", raw)
	}

	// Another number's C confirms nothing of this visit.
	createAt(e, "V-other", time.Now().Add(5*time.Minute).Truncate(time.Second))
	reply(t, e, "+15557650000", "C")
	if v := e.Visit("V-other"); v.ConfirmedAt != nil {
		t.Errorf("a stranger's C confirmed V-other")
	}
}

package board_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/board"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
)

func TestBoardMarksAVisitThePatientConfirmed(t *testing.T) {
	e := testenv.New(t, testenv.WithSandbox(nil), testenv.WithWorkers(),
		testenv.Configure(func(c *config.Config) { c.Admin.Username, c.Admin.Password = adminUser, adminPass }),
		testenv.Server(func(e *testenv.Env, d *handlers.Deps) { d.Board = board.New(board.Options{Visits: e.Engine}) }))
	body := testenv.VisitBody("V-conf")
	body["scheduled_at"] = time.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339)
	e.CreateVisit(body)
	e.Eventually("the starting-soon reminder", func() bool { return len(e.SMSTo(testenv.PatientPhone)) == 1 })
	if page := getPage(t, e, "/admin/visits"); strings.Contains(page, "✓ confirmed") {
		t.Fatalf("the board marks a visit nobody confirmed")
	}
	if _, err := e.Sandbox.Client.IncomingSMS(context.Background(), testenv.PatientPhone, "C"); err != nil {
		t.Fatal(err)
	}
	e.WaitVisit("V-conf", "confirmed", func(v handlers.VisitView) bool { return v.ConfirmedAt != nil })
	if page := getPage(t, e, "/admin/visits"); !strings.Contains(page, `V-conf</a> <span class="confirmed"`) {
		t.Errorf("the day's board does not mark V-conf confirmed:\n%s", page)
	}
	if page := getPage(t, e, "/admin/visits/V-conf"); !strings.Contains(page, `id="confirmed">✓ by the patient at`) {
		t.Errorf("the visit's page does not say it was confirmed:\n%s", page)
	}
}

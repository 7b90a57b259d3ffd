package board_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/board"
	"github.com/visitflow/visitflow/internal/browsertest"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

const adminUser, adminPass = "admin", "board-test-pass"

// newBoardEnv is visitflow's HTTP edge with the board mounted as serve.go
// mounts it, on real Redis, plus the engine to make things happen.
func newBoardEnv(t *testing.T) *testenv.Env {
	t.Helper()
	return testenv.New(t,
		testenv.Configure(func(c *config.Config) { c.Admin.Username, c.Admin.Password = adminUser, adminPass }),
		testenv.Server(func(e *testenv.Env, d *handlers.Deps) {
			d.Board = board.New(board.Options{Visits: e.Engine,
				Jobs: workflows.NewJobList(e.Inspector, workflows.QueueNames(e.Config.Redis.Namespace))})
		}))
}

// waitingPatient creates a visit scheduled a few minutes ago whose patient
// joined the room and is waiting for the provider.
func waitingPatient(t *testing.T, e *testenv.Env, id string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	_, _, err := e.Engine.CreateVisit(ctx, workflows.CreateInput{
		ID: id, ScheduledAt: now.Add(-2 * time.Minute).Truncate(time.Second).Format(time.RFC3339),
		Provider: workflows.PersonInput{Identity: "dr-lee", Name: "Dana Lee", Phone: "+15551230001"},
		Patient:  workflows.PersonInput{Identity: "pat-8812", Name: "Sam Rivera", Phone: "+15551230002"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Engine.ApplyVideo(ctx, workflows.VideoEvent{
		VisitHint: id, Event: workflows.EventParticipantConnected, RoomName: "visit-" + id,
		RoomSID: "RM00000000000000000000000000000001", Timestamp: time.Now().UTC(),
		ParticipantSID: "PA00000000000000000000000000000001", ParticipantIdentity: "pat-8812",
		ParticipantStatus: "connected",
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dumpDOM loads url in headless Chromium and returns the DOM after load, as
// a support person's browser would render it.
func dumpDOM(t *testing.T, url string) string { return browsertest.DumpDOM(t, url) }

// withAuth puts the admin credentials in the URL, as a bookmark would.
func withAuth(e *testenv.Env, path string) string {
	return strings.Replace(e.URL, "http://", "http://"+adminUser+":"+adminPass+"@", 1) + path
}

func TestBoardShowsWaitingPatientMaskedInBrowser(t *testing.T) {
	e := newBoardEnv(t)
	waitingPatient(t, e, "V-board1")

	day := dumpDOM(t, withAuth(e, "/admin/visits"))
	waiting := section(t, day, "waiting", "interpreters")
	for _, want := range []string{"V-board1", "patient", "+1•••••••0002", "S. R."} {
		if !strings.Contains(waiting, want) {
			t.Errorf("'Waiting now' lacks %q:\n%s", want, waiting)
		}
	}
	if !regexp.MustCompile(`class="wait">(\d+s|\d+m \d\ds)<`).MatchString(waiting) {
		t.Errorf("'Waiting now' does not say how long the patient has waited:\n%s", waiting)
	}
	for _, phi := range []string{"+15551230002", "+15551230001", "Sam", "Rivera", "Dana"} {
		if strings.Contains(day, phi) {
			t.Errorf("the board shows %q unmasked", phi)
		}
	}

	one := dumpDOM(t, withAuth(e, "/admin/visits/V-board1"))
	if !strings.Contains(one, `id="state">waiting<`) {
		t.Errorf("visit page does not show state waiting:\n%s", one)
	}
	rows := regexp.MustCompile(`(?s)<tr class="timeline-row">(.*?)</tr>`).FindAllStringSubmatch(one, -1)
	if len(rows) != 3 || !strings.Contains(rows[0][1], "scheduled") || !strings.Contains(rows[1][1], "participant-connected") ||
		!strings.Contains(rows[2][1], "scheduled → waiting") {
		t.Errorf("timeline rows = %q; want the creation, the patient joining, then the change to waiting", rows)
	}
	if !strings.Contains(one, "+1•••••••0001") || strings.Contains(one, "+15551230001") {
		t.Errorf("visit page does not mask the provider's phone")
	}
	// The transition queued a job; the page links it into the dashboard.
	if !regexp.MustCompile(`href="/admin/queues/queues/[^/"]+/tasks/V-board1:`).MatchString(one) {
		t.Errorf("visit page does not link the visit's jobs into /admin/queues:\n%s", section(t, one, "jobs", ""))
	}
}

func TestBoardNeedsAdminAuth(t *testing.T) {
	e := newBoardEnv(t)
	for _, path := range []string{"/admin/visits", "/admin/visits/V-x"} {
		resp, err := http.Get(e.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials = %d; want 401", path, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/admin/visits/V-missing", nil)
	req.SetBasicAuth(adminUser, adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown visit = %d; want 404", resp.StatusCode)
	}
}

func TestMasking(t *testing.T) {
	for in, want := range map[string]string{"+15551230002": "+1•••••••0002", "+442071838750": "+4•••••••8750", "": "", "12": "•••••••"} {
		if got := board.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q; want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"Dr. Jane Lee": "D. J. L.", "sam": "S.", "": "", "Élodie  Martin": "É. M."} {
		if got := board.MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q; want %q", in, got, want)
		}
	}
}

// section returns the HTML from the heading with id from up to the heading
// with id to ("" = the end).
func section(t *testing.T, html, from, to string) string {
	t.Helper()
	i := strings.Index(html, fmt.Sprintf(`id="%s"`, from))
	if i < 0 {
		t.Fatalf("page has no section %q:\n%s", from, html)
	}
	rest := html[i:]
	if to != "" {
		if j := strings.Index(rest, fmt.Sprintf(`id="%s"`, to)); j >= 0 {
			rest = rest[:j]
		}
	}
	return rest
}

func TestBoardVisitWithQueuesNeverUsed(t *testing.T) {
	e := newBoardEnv(t)
	waitingPatient(t, e, "V-board2")
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/admin/visits/V-board2", nil)
	req.SetBasicAuth(adminUser, adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// Only one queue has tasks; the others do not exist yet in Redis.
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), "could not read the queues") {
		t.Fatalf("visit page = %d:\n%s\nwant 200 without a queue error", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), `class="job"`) {
		t.Fatalf("visit page lists no jobs:\n%s", body)
	}
}

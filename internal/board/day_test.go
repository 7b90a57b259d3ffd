package board_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/board"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// boardAt is the board mounted as serve.go mounts it, in zone loc, with
// pages of pageSize, at the fake time now (engine and store too).
func boardAt(t *testing.T, now time.Time, loc *time.Location, pageSize int) *testenv.Env {
	t.Helper()
	clk := clock.NewFake(now)
	return testenv.New(t, testenv.WithClock(clk),
		testenv.Configure(func(c *config.Config) { c.Admin.Username, c.Admin.Password = adminUser, adminPass }),
		testenv.Server(func(e *testenv.Env, d *handlers.Deps) {
			d.Board = board.New(board.Options{Visits: e.Engine, Audit: e.Engine, Clock: clk, Location: loc, PageSize: pageSize})
		}))
}

func createAt(t *testing.T, e *testenv.Env, id string, at time.Time) {
	t.Helper()
	e.CreateEngineVisit(workflows.CreateInput{ID: id, ScheduledAt: at.UTC().Format(time.RFC3339),
		Provider: workflows.PersonInput{Identity: "dr-lee", Name: "Dana Lee", Phone: "+15551230001"},
		Patient:  workflows.PersonInput{Identity: "pat-" + id, Name: "Sam Rivera", Phone: "+15551230002"}})
}

func getPage(t *testing.T, e *testenv.Env, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+path, nil)
	req.SetBasicAuth(adminUser, adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d:\n%s", path, resp.StatusCode, body)
	}
	return string(body)
}

var visitLink = regexp.MustCompile(`<tr><td><a href="/admin/visits/([^"]+)">`)

// byStateIDs lists the visits of the page's "By state" tables.
func byStateIDs(t *testing.T, page string) []string {
	t.Helper()
	var ids []string
	for _, m := range visitLink.FindAllStringSubmatch(section(t, page, "by-state", ""), -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// TestBoardDayIsTheClinicsDay: at 03:00 UTC it is still the evening before
// in New York, and the board's "today" is New York's day, not UTC's.
func TestBoardDayIsTheClinicsDay(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC) // 22:00 on 30 Nov in New York
	e := boardAt(t, now, ny, 0)
	createAt(t, e, "V-morning", time.Date(2026, 11, 30, 8, 0, 0, 0, ny)) // 30 Nov 13:00 UTC
	createAt(t, e, "V-late", time.Date(2026, 11, 30, 23, 30, 0, 0, ny))  // 1 Dec 04:30 UTC
	createAt(t, e, "V-tomorrow", time.Date(2026, 12, 1, 9, 0, 0, 0, ny)) // 1 Dec 14:00 UTC

	page := getPage(t, e, "/admin/visits")
	if got := strings.Join(byStateIDs(t, page), " "); got != "V-morning V-late" {
		t.Errorf("board of New York's 30 Nov lists %q; want \"V-morning V-late\"", got)
	}
	if !strings.Contains(page, "Mon 30 Nov 2026") {
		t.Errorf("board does not say it shows Mon 30 Nov 2026")
	}
	if !strings.Contains(page, ">08:00:00<") || !strings.Contains(page, ">23:30:00<") {
		t.Errorf("board does not show the visits' New York times 08:00:00 and 23:30:00")
	}
}

// TestBoardPagesABusyDay: a day with more visits than a page lists them
// all, page by page, oldest first, each page linking the next.
func TestBoardPagesABusyDay(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	e := boardAt(t, now, time.UTC, 3)
	var want []string
	for i := 0; i < 7; i++ {
		id := "V-" + string(rune('a'+i))
		createAt(t, e, id, now.Add(time.Duration(i+1)*time.Hour))
		want = append(want, id)
	}
	var got []string
	path, pages := "/admin/visits", 0
	for path != "" {
		pages++
		if pages > 5 {
			t.Fatalf("more than 5 pages for 7 visits in pages of 3")
		}
		page := getPage(t, e, path)
		ids := byStateIDs(t, page)
		if len(ids) > 3 {
			t.Errorf("page %d lists %d visits; want at most 3", pages, len(ids))
		}
		got = append(got, ids...)
		path = ""
		if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(page); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") || pages != 3 {
		t.Errorf("the pages list %v in %d pages; want %v in 3", got, pages, want)
	}
	if p := getPage(t, e, "/admin/visits"); !strings.Contains(p, "visits 1–3") {
		t.Errorf("the first page does not say it shows visits 1–3:\n%s", section(t, p, "paging", "waiting"))
	}
}

// TestBoardListsUnknownOutcomesAndReconcileFailures: entries whose outcome
// is unknown or whose reconciliation failed are failures a person must see.
func TestBoardListsUnknownOutcomesAndReconcileFailures(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	e := boardAt(t, now, time.UTC, 0)
	createAt(t, e, "V-f", now.Add(time.Hour))
	entries := []visit.Entry{
		{At: now, Source: visit.SourceWorker, Type: "sms-" + visit.EntryOutcomeUnknown, Summary: "reminder: Twilio did not answer"},
		{At: now, Source: "twilio.rest", Type: visit.EntryReconcileFailed, Summary: "room read failed"},
		{At: now, Source: visit.SourceVoice, Type: "call-" + visit.EntryOutcomeUnknown, Summary: "interpreter call: no answer from Twilio"},
	}
	if _, err := e.Store.Update(context.Background(), "V-f", "", func(v *visit.Visit) error {
		for _, en := range entries {
			v.Log(en)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	failed := section(t, getPage(t, e, "/admin/visits"), "failed", "reconciled")
	for _, en := range entries {
		if !strings.Contains(failed, en.Type) || !strings.Contains(failed, en.Summary) {
			t.Errorf("failures lack %s (%q):\n%s", en.Type, en.Summary, failed)
		}
	}
}

// TestBoardCountsWhatReconciliationRecovered: facts Twilio's REST API
// supplied in place of a lost callback are counted on the day's board.
func TestBoardCountsWhatReconciliationRecovered(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	e := boardAt(t, now, time.UTC, 0)
	createAt(t, e, "V-r", now.Add(time.Hour))
	if s := section(t, getPage(t, e, "/admin/visits"), "reconciled", "by-state"); !strings.Contains(s, "came with its callback") {
		t.Errorf("reconciled section before any reconciliation:\n%s", s)
	}
	if _, err := e.Store.Update(context.Background(), "V-r", "", func(v *visit.Visit) error {
		v.Log(visit.Entry{At: now, Source: visit.SourceREST, Type: "participant-connected", Summary: "patient connected"})
		v.Log(visit.Entry{At: now, Source: visit.SourceREST, Type: "room-ended", Summary: "room ended"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if s := section(t, getPage(t, e, "/admin/visits"), "reconciled", "by-state"); !strings.Contains(s, "2 facts in 1 visit came from") {
		t.Errorf("reconciled section after two recovered facts:\n%s", s)
	}
}

// TestBoardVisitPageShowsItsAuditTrail: who read the visit through the API
// and the board is on the visit's page, newest first.
func TestBoardVisitPageShowsItsAuditTrail(t *testing.T) {
	now := time.Now().UTC()
	e := boardAt(t, now, time.UTC, 0)
	createAt(t, e, "V-aud", now.Add(time.Hour))
	if code := e.API(http.MethodGet, "/v1/visits/V-aud", nil, nil); code != http.StatusOK {
		t.Fatalf("GET /v1/visits/V-aud = %d", code)
	}
	getPage(t, e, "/admin/visits/V-aud")
	trail := section(t, getPage(t, e, "/admin/visits/V-aud"), "audit", "")
	rows := regexp.MustCompile(`<tr class="audit">(.*?)</tr>`).FindAllStringSubmatch(trail, -1)
	if len(rows) != 2 || !strings.Contains(rows[0][1], "admin:"+adminUser) || !strings.Contains(rows[0][1], "GET /admin/visits/{id}") ||
		!strings.Contains(rows[1][1], "token:default") || !strings.Contains(rows[1][1], "GET /v1/visits/{id}") {
		t.Errorf("audit trail rows = %q; want the board view by admin:%s, then the API read by token:default", rows, adminUser)
	}
}

// TestBoardVisitPageShowsUpcomingTimers: the visit's pending deadlines
// (reminders, no-show check; this engine has no Twilio, so no room) are one
// Asynq task, not one each, so the visit's page lists them, in order, with
// the task that holds them.
func TestBoardVisitPageShowsUpcomingTimers(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	e := boardAt(t, now, time.UTC, 0)
	createAt(t, e, "V-tim", now.Add(72*time.Hour))
	timers := section(t, getPage(t, e, "/admin/visits/V-tim"), "timers", "timeline")
	rows := regexp.MustCompile(`<tr class="timer">(.*?)</tr>`).FindAllStringSubmatch(timers, -1)
	want := [][]string{
		{"reminder:send", "r24h0m0s", "Thu 3 Dec 09:00"},
		{"reminder:send", "r1h0m0s", "Fri 4 Dec 08:00"},
		{"reminder:send", "r10m0s", "Fri 4 Dec 08:50"},
		{"visit:no-show-check", "no-show", "Fri 4 Dec 09:15"},
	}
	if len(rows) != len(want) {
		t.Fatalf("upcoming timer rows = %q; want %d", rows, len(want))
	}
	for i, w := range want {
		for _, s := range w {
			if !strings.Contains(rows[i][1], s) {
				t.Errorf("timer row %d = %q; want %q in it", i, rows[i][1], s)
			}
		}
	}
	if !strings.Contains(timers, "V-tim:visit:timers:t0:s0") {
		t.Errorf("upcoming timers do not name the task holding them:\n%s", timers)
	}
}

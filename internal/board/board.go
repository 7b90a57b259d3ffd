// Package board is the visit board at /admin/visits: a server-rendered
// (html/template, no JavaScript) view for a clinic's support desk of today's
// visits by state, who is waiting and for how long, interpreter legs and
// failures (messages and calls that failed or whose outcome is unknown,
// reconciliations that failed), and per visit its upcoming timers
// (reminders, room, no-show check), timeline, participants, jobs and audit
// trail. "Today" is the calendar day in board.timezone; a
// busy day is split into pages rather than cut off.
//
// Phones and names are PHI: the board shows them masked (+1•••••••0002,
// initials) and never puts them in URLs. The handler is mounted behind admin
// basic auth by the HTTP edge.
package board

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// Visits is what the board reads (implemented by *workflows.Engine).
type Visits interface {
	ListVisits(ctx context.Context, q visit.ListQuery) ([]*visit.Visit, string, error)
	Visit(ctx context.Context, id string) (*visit.Visit, []visit.Entry, error)
}

// Jobs lists a visit's jobs (implemented by *workflows.JobList).
type Jobs interface {
	VisitJobs(ctx context.Context, id string) ([]workflows.JobView, error)
}

// AuditTrail reads who read or changed a visit (implemented by
// *workflows.Engine).
type AuditTrail interface {
	LatestAudit(ctx context.Context, id string, n int) ([]audit.Record, error)
}

// auditShown is how many of a visit's newest audit records its page shows;
// GET /v1/audit?visit= has them all.
const auditShown = 50

// Options configure the board.
type Options struct {
	Visits Visits
	// Jobs lets a visit's page list its jobs; nil hides them.
	Jobs Jobs
	// Audit lets a visit's page show its audit trail; nil hides it.
	Audit AuditTrail
	// Prefix is where the board is mounted ("/admin/visits"); QueuesPath is
	// the Asynq dashboard's root ("/admin/queues") for links to tasks.
	Prefix     string
	QueuesPath string
	Clock      clock.Clock
	// Location decides what "today" is and the zone of every time shown
	// (board.timezone); the server's local zone when nil.
	Location *time.Location
	// PageSize is how many visits one page of a day lists (board.page_size);
	// 200 when 0.
	PageSize int
}

// New returns the board handler. It serves Prefix (the day's board) and
// Prefix/{id} (one visit).
func New(o Options) http.Handler {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.PageSize <= 0 {
		o.PageSize = 200
	}
	if o.Prefix == "" {
		o.Prefix = "/admin/visits"
	}
	if o.QueuesPath == "" {
		o.QueuesPath = "/admin/queues"
	}
	b := &board{o: o}
	return http.HandlerFunc(b.serve)
}

type board struct{ o Options }

func (b *board) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, b.o.Prefix), "/")
	switch {
	case rest == "":
		b.day(w, r)
	case visit.ValidID(rest):
		b.one(w, r, rest)
	default:
		http.NotFound(w, r)
	}
}

// day renders a page of today's board (or of ?day=YYYY-MM-DD), oldest
// first; ?page= is the cursor of a further page, ?start= its first number.
func (b *board) day(w http.ResponseWriter, r *http.Request) {
	now := b.o.Clock.Now()
	local := now.In(b.o.Location)
	from := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, b.o.Location)
	if d := r.URL.Query().Get("day"); d != "" {
		t, err := time.ParseInLocation("2006-01-02", d, b.o.Location)
		if err != nil {
			http.Error(w, "day must be YYYY-MM-DD", http.StatusBadRequest)
			return
		}
		from = t
	}
	to := from.AddDate(0, 0, 1).Add(-time.Millisecond)
	q := r.URL.Query()
	start, _ := strconv.Atoi(q.Get("start"))
	if start < 1 {
		start = 1
	}
	visits, next, err := b.o.Visits.ListVisits(r.Context(), visit.ListQuery{From: from, To: to, Limit: b.o.PageSize,
		OldestFirst: true, Cursor: q.Get("page")})
	if errors.Is(err, visit.ErrBadCursor) {
		http.Error(w, "page is not a page of this board", http.StatusBadRequest)
		return
	}
	if err != nil {
		b.fail(w, "list visits", err)
		return
	}

	page := dayPage{Day: from.Format("Mon 2 Jan 2006"), Now: local.Format("15:04 MST"), Prefix: b.o.Prefix,
		First: start, Last: start + len(visits) - 1}
	dayParam := url.Values{"day": {from.Format("2006-01-02")}}
	if q.Get("page") != "" {
		page.FirstPage = b.o.Prefix + "?" + dayParam.Encode()
	}
	if next != "" {
		v := url.Values{"day": dayParam["day"], "page": {next}, "start": {strconv.Itoa(page.Last + 1)}}
		page.NextPage = b.o.Prefix + "?" + v.Encode()
	}
	byState := map[visit.State][]row{}
	for _, v := range visits {
		st := v.State()
		rw := b.row(v, st, now)
		byState[st] = append(byState[st], rw)
		if rw.WaitingFor != "" {
			page.Waiting = append(page.Waiting, rw)
		}
		if v.Interpreter != nil {
			page.Interpreters = append(page.Interpreters, interpreterRow{
				row: rw, Line: MaskPhone(v.Interpreter.Line), State: string(v.Interpreter.State), Attempts: v.Interpreter.Attempts,
			})
		}
		_, tl, err := b.o.Visits.Visit(r.Context(), v.ID)
		if err != nil && !errors.Is(err, visit.ErrNotFound) {
			b.fail(w, "read timeline", err)
			return
		}
		reconciled := 0
		for _, e := range tl {
			if e.IsFailure() {
				page.Failed = append(page.Failed, failedRow{row: rw, At: b.clockTime(e.At), Type: e.Type, Summary: e.Summary})
			}
			if e.Source == visit.SourceREST && !e.IsFailure() {
				reconciled++
			}
		}
		if reconciled > 0 {
			page.Reconciled += reconciled
			page.ReconciledVisits++
		}
	}
	sort.SliceStable(page.Waiting, func(i, j int) bool { return page.Waiting[i].waited > page.Waiting[j].waited })
	for _, st := range visit.States {
		page.States = append(page.States, stateGroup{State: string(st), Rows: byState[st]})
	}
	b.render(w, dayTemplate, page)
}

// one renders a visit's page.
func (b *board) one(w http.ResponseWriter, r *http.Request, id string) {
	v, tl, err := b.o.Visits.Visit(r.Context(), id)
	if errors.Is(err, visit.ErrNotFound) {
		http.Error(w, "no such visit", http.StatusNotFound)
		return
	}
	if err != nil {
		b.fail(w, "read visit", err)
		return
	}
	now := b.o.Clock.Now()
	st := v.State()
	page := visitPage{row: b.row(v, st, now), Prefix: b.o.Prefix, QueuesPath: b.o.QueuesPath,
		Timezone: v.Timezone, RoomName: v.Room.Name, Schedule: v.ScheduledAt.In(b.o.Location).Format("Mon 2 Jan 2006 15:04 MST")}
	for _, t := range workflows.UpcomingTimers(v) {
		page.Timers = append(page.Timers, timerRow{Type: t.Type, Name: t.Name, At: t.At.In(b.o.Location).Format("Mon 2 Jan 15:04")})
	}
	page.TimersTask = workflows.TimersTaskID(v)
	for _, e := range tl {
		page.Timeline = append(page.Timeline, timelineRow{At: b.clockTime(e.At), Source: e.Source, Type: e.Type,
			Summary: e.Summary, State: string(e.State), Failed: e.IsFailure()})
	}
	for _, p := range v.ParticipantList() {
		pr := participantRow{Role: roleLabel(p), SID: p.SID, Connected: p.Connected}
		if p.ConnectedAt != nil {
			pr.From = b.clockTime(*p.ConnectedAt)
		}
		if p.DisconnectedAt != nil {
			pr.To = b.clockTime(*p.DisconnectedAt)
		}
		page.Participants = append(page.Participants, pr)
	}
	if v.Interpreter != nil {
		page.Interpreter = &interpreterRow{row: page.row, Line: MaskPhone(v.Interpreter.Line),
			State: string(v.Interpreter.State), Attempts: v.Interpreter.Attempts}
	}
	if b.o.Jobs != nil {
		page.ShowJobs = true
		jobs, err := b.jobs(r.Context(), id)
		if err != nil {
			page.JobsError = "could not read the queues: " + err.Error()
		}
		page.Jobs = jobs
	}
	if b.o.Audit != nil {
		page.ShowAudit = true
		records, err := b.o.Audit.LatestAudit(r.Context(), id, auditShown)
		if err != nil {
			page.AuditError = "could not read the audit trail: " + err.Error()
		}
		for _, rec := range records {
			page.Audit = append(page.Audit, auditRow{At: rec.At.In(b.o.Location).Format("2 Jan 15:04:05"),
				Actor: rec.Actor, Action: rec.Action, Status: rec.Status})
		}
	}
	b.render(w, visitTemplate, page)
}

// jobs lists the visit's jobs with links into the Asynq dashboard.
func (b *board) jobs(ctx context.Context, id string) ([]jobRow, error) {
	jobs, err := b.o.Jobs.VisitJobs(ctx, id)
	out := make([]jobRow, 0, len(jobs))
	for _, j := range jobs {
		jr := jobRow{ID: j.ID, Type: j.Type, Queue: j.Queue, State: j.State, Retried: j.Retried, LastError: j.LastError,
			Link: b.o.QueuesPath + "/queues/" + url.PathEscape(j.Queue) + "/tasks/" + url.PathEscape(j.ID) + "?state=" + j.State}
		if !j.At.IsZero() {
			jr.When = b.clockTime(j.At)
		}
		out = append(out, jr)
	}
	return out, err
}

func (b *board) row(v *visit.Visit, st visit.State, now time.Time) row {
	rw := row{ID: v.ID, Link: b.o.Prefix + "/" + url.PathEscape(v.ID), State: string(st),
		At: b.clockTime(v.ScheduledAt), Provider: MaskName(v.Provider.Name), Patient: MaskName(v.Patient.Name),
		ProviderPhone: MaskPhone(v.Provider.Phone), PatientPhone: MaskPhone(v.Patient.Phone)}
	if v.ConfirmedAt != nil {
		rw.Confirmed = b.clockTime(*v.ConfirmedAt)
	}
	if who, since, ok := waitingSince(v, st); ok {
		rw.waited = now.Sub(since)
		rw.Who = who
		rw.WaitingFor = formatWait(rw.waited)
	}
	return rw
}

// waitingSince tells who is waiting alone in the room and since when: the
// earliest still-open connection of the patient (state waiting) or the
// provider (provider_waiting).
func waitingSince(v *visit.Visit, st visit.State) (who string, since time.Time, ok bool) {
	var role visit.Role
	switch st {
	case visit.Waiting:
		role = visit.RolePatient
	case visit.ProviderWaiting:
		role = visit.RoleProvider
	default:
		return "", time.Time{}, false
	}
	for _, p := range v.ParticipantList() {
		if p.Role == role && p.Connected && p.ConnectedAt != nil && (!ok || p.ConnectedAt.Before(since)) {
			since, ok, who = *p.ConnectedAt, true, roleLabel(p)
		}
	}
	return who, since, ok
}

// roleLabel names a participant's role as support staff read it: "patient",
// or "patient (phone)" for the patient's dial-in leg, so nobody mistakes a
// phone caller for the patient on video.
func roleLabel(p visit.ParticipantView) string {
	if p.Via == visit.ViaPhone {
		return string(p.Role) + " (phone)"
	}
	return string(p.Role)
}

func formatWait(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	if d < time.Hour {
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

func (b *board) clockTime(t time.Time) string { return t.In(b.o.Location).Format("15:04:05") }

func (b *board) fail(w http.ResponseWriter, op string, err error) {
	// Store errors name ids and Redis addresses only, never PHI.
	http.Error(w, "board: "+op+": "+err.Error(), http.StatusServiceUnavailable)
}

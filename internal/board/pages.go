package board

import (
	"bytes"
	"html/template"
	"net/http"
	"time"
)

// row is one visit as the board lists it; every person field is masked.
type row struct {
	ID, Link, State, At         string
	Provider, Patient           string
	ProviderPhone, PatientPhone string
	Who, WaitingFor             string
	// Confirmed is when the patient confirmed (replied C), "" until then.
	Confirmed string
	waited    time.Duration
}

type stateGroup struct {
	State string
	Rows  []row
}

type interpreterRow struct {
	row
	Line, State string
	Attempts    int
}

type failedRow struct {
	row
	At, Type, Summary string
}

type dayPage struct {
	Day, Now, Prefix string
	// First and Last number the page's visits within the day; FirstPage
	// and NextPage link the day's first and next page ("" when this is it).
	First, Last         int
	FirstPage, NextPage string
	States              []stateGroup
	Waiting             []row
	Interpreters        []interpreterRow
	Failed              []failedRow
	// Reconciled counts the facts of the day's visits that Twilio's REST
	// API supplied because their callback never came (timeline source
	// twilio.rest), and in how many visits.
	Reconciled, ReconciledVisits int
}

type timelineRow struct {
	At, Source, Type, Summary, State string
	Failed                           bool
}

type participantRow struct {
	Role, SID, From, To string
	Connected           bool
}

type jobRow struct {
	ID, Type, Queue, State, When, LastError, Link string
	Retried                                       int
}

type visitPage struct {
	row
	Prefix, QueuesPath, Timezone, RoomName, Schedule string
	Timers                                           []timerRow
	TimersTask                                       string
	Timeline                                         []timelineRow
	Participants                                     []participantRow
	Interpreter                                      *interpreterRow
	ShowJobs                                         bool
	Jobs                                             []jobRow
	JobsError                                        string
	ShowAudit                                        bool
	Audit                                            []auditRow
	AuditError                                       string
}

// timerRow is one pending deadline of the visit's schedule.
type timerRow struct{ Type, Name, At string }

// auditRow is one audit record: who read or changed the visit, when, how.
type auditRow struct {
	At, Actor, Action string
	Status            int
}

// render executes into a buffer first so a template error is a clean 500,
// not half a page.
func (b *board) render(w http.ResponseWriter, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "board: render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Write(buf.Bytes())
}

const layout = `{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>{{.}} · visitflow</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#f4f4f4}
.state{font-weight:600}.failed{color:#b00020}.muted{color:#777}
h2{margin-top:1.5em}
</style></head><body>{{end}}`

var dayTemplate = template.Must(template.Must(template.New("layout").Parse(layout)).New("day").Parse(`{{template "head" "Visit board"}}
<h1>Visits on {{.Day}}</h1>
<p class="muted" id="paging">As of {{.Now}} · {{if lt .Last .First}}no visits{{else}}visits {{.First}}–{{.Last}}{{end}}{{if .NextPage}} · <a href="{{.NextPage}}" rel="next">more visits on the next page</a>{{end}}{{if .FirstPage}} · <a href="{{.FirstPage}}">first page</a>{{end}} · refreshes every 30 s</p>

<h2 id="waiting">Waiting now</h2>
{{if .Waiting}}<table><tr><th>Visit</th><th>At</th><th>Who is waiting</th><th>For</th><th>Provider</th><th>Patient</th><th>Patient phone</th></tr>
{{range .Waiting}}<tr class="waiting"><td><a href="{{.Link}}">{{.ID}}</a></td><td>{{.At}}</td><td>{{.Who}}</td><td class="wait">{{.WaitingFor}}</td><td>{{.Provider}}</td><td>{{.Patient}}</td><td class="phone">{{.PatientPhone}}</td></tr>
{{end}}</table>{{else}}<p class="muted">Nobody is waiting.</p>{{end}}

<h2 id="interpreters">Interpreter legs</h2>
{{if .Interpreters}}<table><tr><th>Visit</th><th>Line</th><th>State</th><th>Attempts</th></tr>
{{range .Interpreters}}<tr><td><a href="{{.Link}}">{{.ID}}</a></td><td class="phone">{{.Line}}</td><td>{{.State}}</td><td>{{.Attempts}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No interpreter legs today.</p>{{end}}

<h2 id="failed">Failures: messages and calls failed or of unknown outcome, reconciliation</h2>
{{if .Failed}}<table><tr><th>Visit</th><th>At</th><th>What</th><th>Detail</th></tr>
{{range .Failed}}<tr class="failed"><td><a href="{{.Link}}">{{.ID}}</a></td><td>{{.At}}</td><td>{{.Type}}</td><td>{{.Summary}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No failures today.</p>{{end}}
<h2 id="reconciled">Reconciled with Twilio</h2>
{{if .Reconciled}}<p>{{.Reconciled}} facts in {{.ReconciledVisits}} {{if eq .ReconciledVisits 1}}visit{{else}}visits{{end}} came from Twilio's REST API because their callbacks never arrived (timeline source <code>twilio.rest</code>).</p>{{else}}<p class="muted">Every fact of today's visits came with its callback.</p>{{end}}

<h2 id="by-state">By state</h2>
{{range .States}}{{if .Rows}}<h3 class="state">{{.State}} ({{len .Rows}})</h3>
<table><tr><th>Visit</th><th>At</th><th>Provider</th><th>Provider phone</th><th>Patient</th><th>Patient phone</th></tr>
{{range .Rows}}<tr><td><a href="{{.Link}}">{{.ID}}</a>{{if .Confirmed}} <span class="confirmed" title="confirmed by the patient at {{.Confirmed}}">✓ confirmed</span>{{end}}</td><td>{{.At}}</td><td>{{.Provider}}</td><td class="phone">{{.ProviderPhone}}</td><td>{{.Patient}}</td><td class="phone">{{.PatientPhone}}</td></tr>
{{end}}</table>{{end}}{{end}}
</body></html>`))

var visitTemplate = template.Must(template.Must(template.New("layout").Parse(layout)).New("visit").Parse(`{{template "head" .ID}}
<p><a href="{{.Prefix}}">← all visits</a></p>
<h1>Visit {{.ID}}</h1>
<table>
<tr><th>State</th><td class="state" id="state">{{.State}}</td></tr>
<tr><th>Scheduled</th><td>{{.Schedule}} ({{.Timezone}})</td></tr>
<tr><th>Provider</th><td>{{.Provider}} <span class="phone">{{.ProviderPhone}}</span></td></tr>
<tr><th>Patient</th><td>{{.Patient}} <span class="phone">{{.PatientPhone}}</span></td></tr>
<tr><th>Room</th><td>{{.RoomName}}</td></tr>
<tr><th>Confirmed</th><td id="confirmed">{{if .Confirmed}}✓ by the patient at {{.Confirmed}}{{else}}not yet{{end}}</td></tr>
{{if .WaitingFor}}<tr><th>Waiting</th><td class="wait">{{.Who}} for {{.WaitingFor}}</td></tr>{{end}}
{{with .Interpreter}}<tr><th>Interpreter</th><td><span class="phone">{{.Line}}</span> · {{.State}} · {{.Attempts}} attempts</td></tr>{{end}}
</table>

<h2 id="participants">Participants</h2>
{{if .Participants}}<table><tr><th>Role</th><th>Connection</th><th>From</th><th>To</th></tr>
{{range .Participants}}<tr><td>{{.Role}}</td><td>{{.SID}}</td><td>{{.From}}</td><td>{{if .Connected}}connected{{else}}{{.To}}{{end}}</td></tr>
{{end}}</table>{{else}}<p class="muted">Nobody has joined.</p>{{end}}

{{if .Timers}}<h2 id="timers">Upcoming timers</h2>
<p class="muted">Deadlines of the current schedule not reached yet; one task, {{.TimersTask}}, waits for the first and enqueues each job when its time comes.</p>
<table><tr><th>Job</th><th>Timer</th><th>When</th></tr>
{{range .Timers}}<tr class="timer"><td>{{.Type}}</td><td>{{.Name}}</td><td>{{.At}}</td></tr>
{{end}}</table>{{end}}

<h2 id="timeline">Timeline</h2>
<table><tr><th>At</th><th>Source</th><th>Event</th><th>Detail</th><th>State</th></tr>
{{range .Timeline}}<tr class="timeline-row{{if .Failed}} failed{{end}}"><td>{{.At}}</td><td>{{.Source}}</td><td>{{.Type}}</td><td>{{.Summary}}</td><td>{{.State}}</td></tr>
{{end}}</table>

{{if .ShowJobs}}<h2 id="jobs">Jobs</h2>
{{if .JobsError}}<p class="failed">{{.JobsError}}</p>{{end}}
{{if .Jobs}}<table><tr><th>Task</th><th>Type</th><th>Queue</th><th>State</th><th>When</th><th>Retried</th><th>Last error</th></tr>
{{range .Jobs}}<tr class="job"><td><a href="{{.Link}}">{{.ID}}</a></td><td>{{.Type}}</td><td>{{.Queue}}</td><td>{{.State}}</td><td>{{.When}}</td><td>{{.Retried}}</td><td>{{.LastError}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No jobs in the queues for this visit.</p>{{end}}
<p><a href="{{.QueuesPath}}">All queues</a></p>{{end}}

{{if .ShowAudit}}<h2 id="audit">Audit trail</h2>
<p class="muted">Who read or changed this visit, newest first (the latest 50; all of them: GET /v1/audit?visit={{.ID}}).</p>
{{if .AuditError}}<p class="failed">{{.AuditError}}</p>{{end}}
{{if .Audit}}<table><tr><th>At</th><th>Who</th><th>What</th><th>Status</th></tr>
{{range .Audit}}<tr class="audit"><td>{{.At}}</td><td>{{.Actor}}</td><td>{{.Action}}</td><td>{{.Status}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No audit records yet.</p>{{end}}{{end}}
</body></html>`))

package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/joinpage"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// audit.go is the HTTP edge's part of the audit trail (internal/audit):
// every request that reads or changes a visit's record appends a record of
// who, what, when and the outcome; GET /v1/audit reads them.

// auditedRequest describes a request for the audit trail; ok false means
// the request is not audited (a dashboard asset, a queue summary).
type auditedRequest func(r *http.Request) (actor, action string, visits []string, ok bool)

// auditRequests records every request describe audits. The handler may add
// the visits it touched beyond the route's (audit.Touch). A GET's answer
// is held back until its record is stored, and replaced by a 503 when the
// trail cannot be written, so no record is read without an audit record.
// Other methods have changed the visit by the time the record is written:
// their answer goes out and a failed record is logged.
func auditRequests(d Deps, describe auditedRequest) func(http.Handler) http.Handler {
	return auditAnswers(d, describe, nil)
}

// auditAnswers is auditRequests for a handler whose GET answers name
// visits the request does not (the dashboard's task lists): shown, when
// not nil, returns them from the held answer.
func auditAnswers(d Deps, describe auditedRequest, shown func(answer []byte) []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			actor, action, visits, ok := describe(r)
			if !ok || d.Engine == nil {
				next.ServeHTTP(w, r)
				return
			}
			ctx, touched := audit.WithTouched(r.Context())
			r = r.WithContext(ctx)
			read := r.Method == http.MethodGet || r.Method == http.MethodHead
			var status int
			held := &heldResponse{header: http.Header{}, code: http.StatusOK}
			if read {
				next.ServeHTTP(held, r)
				status = held.code
			} else {
				sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
				next.ServeHTTP(sw, r)
				status = sw.code
			}
			audit.Touch(ctx, visits...)
			if read && shown != nil {
				audit.Touch(ctx, shown(held.body.Bytes())...)
			}
			rec := audit.Record{Actor: actor, Action: action, Visits: touched.Visits(), Status: status}
			// A change's answer has gone out already: a client that hangs up
			// now must not cancel the record of what it did.
			if err := d.Engine.RecordAudit(context.WithoutCancel(ctx), rec); err != nil {
				d.Log.Error("audit record not stored", zap.String("action", action), zap.Strings("visits", rec.Visits),
					zap.Int("status", status), zap.Error(err))
				if read {
					writeError(w, http.StatusServiceUnavailable, "audit_unavailable",
						"the audit trail cannot be written, so the record is not shown; try again", "")
				}
				return
			}
			if read {
				held.sendTo(w)
			}
		})
	}
}

// heldResponse keeps a handler's answer until it may be sent.
type heldResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (h *heldResponse) Header() http.Header         { return h.header }
func (h *heldResponse) WriteHeader(code int)        { h.code = code }
func (h *heldResponse) Write(b []byte) (int, error) { return h.body.Write(b) }

func (h *heldResponse) sendTo(w http.ResponseWriter) {
	for k, v := range h.header {
		w.Header()[k] = v
	}
	w.WriteHeader(h.code)
	_, _ = w.Write(h.body.Bytes())
}

// routeAction is the request's method and matched route template, which
// never holds a secret, a query or a body ("POST /v1/join/{invite}").
func routeAction(r *http.Request) string {
	tmpl := r.URL.Path
	if route := mux.CurrentRoute(r); route != nil {
		if t, err := route.GetPathTemplate(); err == nil {
			tmpl = t
		}
	}
	return r.Method + " " + tmpl
}

// apiRequest: a /v1 request by the API token the bearer check named; the
// route's {id} is its visit.
func apiRequest(r *http.Request) (string, string, []string, bool) {
	return audit.ActorFrom(r.Context()), routeAction(r), routeVisit(r), true
}

// inviteRequest: the patient or guest exchanging their invite; the
// handler touches the invite's visit.
func inviteRequest(r *http.Request) (string, string, []string, bool) {
	return audit.InviteActor, routeAction(r), nil, true
}

// invitePageRequest: the join page an invite opens (not the page's static
// assets, which name no visit); the page's lookup touches the invite's visit.
func invitePageRequest(r *http.Request) (string, string, []string, bool) {
	rest := strings.TrimPrefix(r.URL.Path, joinpage.Prefix)
	if rest == "" || strings.Contains(rest, "/") {
		return "", "", nil, false
	}
	return audit.InviteActor, r.Method + " " + joinpage.Prefix + "{invite}", nil, true
}

func routeVisit(r *http.Request) []string {
	if id := mux.Vars(r)["id"]; visit.ValidID(id) {
		return []string{id}
	}
	return nil
}

// boardRequest: every page of the visit board (/admin/visits[/{id}]); the
// board touches the visits a page shows.
func boardRequest(r *http.Request) (string, string, []string, bool) {
	user, _, _ := r.BasicAuth()
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/admin/visits"), "/")
	if rest == "" {
		return audit.AdminActor(user), r.Method + " /admin/visits", nil, true
	}
	if !visit.ValidID(rest) {
		return "", "", nil, false
	}
	return audit.AdminActor(user), r.Method + " /admin/visits/{id}", []string{rest}, true
}

// dashboardRequest: the Asynq dashboard's API requests that show or change
// tasks (their ids name visits; payloads carry ids only): the queue and
// task id become placeholders in the action, the task id's visit its visit.
// Its page assets and queue summaries show no task and are not audited.
func dashboardRequest(r *http.Request) (string, string, []string, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/admin/queues/api/queues/")
	segs := strings.Split(rest, "/")
	if !ok || len(segs) < 2 {
		return "", "", nil, false
	}
	list := -1 // the segment naming a task list ("scheduled_tasks", "tasks")
	for i, s := range segs[1:] {
		if name, _, _ := strings.Cut(s, ":"); strings.HasSuffix(name, "tasks") {
			list = i + 1
			break
		}
	}
	if list < 0 {
		return "", "", nil, false
	}
	tmpl := append([]string{"{qname}"}, segs[1:list+1]...)
	var visits []string
	if list+1 < len(segs) {
		task := segs[list+1]
		op := ""
		if i := strings.LastIndexByte(task, ':'); i >= 0 && taskOps[task[i+1:]] {
			op = task[i:]
		}
		tmpl = append(tmpl, "{task_id}"+op)
		if id, _, _ := strings.Cut(task, ":"); visit.ValidID(id) {
			visits = []string{id}
		}
	}
	user, _, _ := r.BasicAuth()
	return audit.AdminActor(user), r.Method + " /admin/queues/api/queues/" + strings.Join(tmpl, "/"), visits, true
}

// dashboardShown returns the visits of the tasks a dashboard task list
// shows ({"tasks":[{"id":"V-42:…"}]}).
func dashboardShown(answer []byte) []string {
	var list struct {
		Tasks []struct {
			ID string `json:"id"`
		} `json:"tasks"`
	}
	if json.Unmarshal(answer, &list) != nil {
		return nil
	}
	var visits []string
	for _, t := range list.Tasks {
		if id, _, _ := strings.Cut(t.ID, ":"); visit.ValidID(id) {
			visits = append(visits, id)
		}
	}
	return visits
}

// taskOps are the dashboard's operations on one task (…/{task_id}:run).
var taskOps = map[string]bool{"run": true, "archive": true, "cancel": true}

// auditPage is GET /v1/audit's answer.
type auditPage struct {
	Records    []audit.Record `json:"records"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// handleAuditTrail: GET /v1/audit?visit=&from=&to=&cursor=&limit= lists
// audit records oldest first (limit 1–1000, default 100).
func handleAuditTrail(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		aq := audit.Query{Visit: q.Get("visit"), Cursor: q.Get("cursor"), Limit: 100}
		if aq.Visit != "" && !visit.ValidID(aq.Visit) {
			d.apiFailure(w, r, &workflows.InputError{Field: "visit", Message: "must be a visit id"})
			return
		}
		if err := pageQuery(q, &aq.From, &aq.To, &aq.Limit, 1000); err != nil {
			d.apiFailure(w, r, err)
			return
		}
		records, next, err := d.Engine.AuditTrail(r.Context(), aq)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		if records == nil {
			records = []audit.Record{}
		}
		writeJSON(w, http.StatusOK, auditPage{Records: records, NextCursor: next})
	})
}

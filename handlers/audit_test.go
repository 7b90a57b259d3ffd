package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynqmon"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/board"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

const (
	ehrToken            = "ehr-secret-token"
	adminUser, adminPwd = "ops", "audit-test-pass"
	guestPhone          = "+15557654321"
	guestName           = "Gwen Guest"
)

// auditEnv is visitflow with the emulator, workers, the board and the
// dashboard mounted as serve.go mounts them, and a named API token "ehr".
func auditEnv(t *testing.T) *testenv.Env {
	t.Helper()
	return testenv.New(t, testenv.WithSandbox(nil), testenv.WithWorkers(),
		testenv.Configure(func(c *config.Config) {
			c.API.Tokens = []config.APIToken{{Name: "ehr", Token: ehrToken}}
			c.Admin.Username, c.Admin.Password = adminUser, adminPwd
			c.Interpreter.Lines = map[string]config.InterpreterLine{"voyce-es": {Phone: "+15005550011"}}
		}),
		testenv.Server(func(e *testenv.Env, d *handlers.Deps) {
			d.Board = board.New(board.Options{Visits: e.Engine, Audit: e.Engine,
				Jobs: workflows.NewJobList(e.Inspector, workflows.QueueNames(e.Config.Redis.Namespace))})
			d.Dashboard = asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: e.Conn.Asynq,
				PayloadFormatter: asynqmon.PayloadFormatterFunc(workflows.RedactPayload)})
		}))
}

type call struct {
	method, path, body string
	as                 string // "ehr", "default", "admin", "none"
}

func (c call) do(t *testing.T, e *testenv.Env) (int, []byte) {
	t.Helper()
	var header []string
	switch c.as {
	case "ehr":
		header = []string{"Authorization", "Bearer " + ehrToken}
	case "default":
		header = []string{"Authorization", "Bearer " + e.Config.API.Token}
	}
	req, _ := http.NewRequest(c.method, e.URL+c.path, strings.NewReader(c.body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if c.as == "admin" {
		req.SetBasicAuth(adminUser, adminPwd)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func visitJSON(id string, at time.Time) string {
	b, _ := json.Marshal(map[string]any{
		"id": id, "scheduled_at": at.UTC().Format(time.RFC3339), "timezone": "America/New_York",
		"provider": map[string]string{"identity": "dr-lee", "name": "Dr. Lee", "phone": testenv.ProviderPhone},
		"patient":  map[string]string{"identity": "pat-8812", "name": "Sam Rivera", "phone": testenv.PatientPhone},
	})
	return string(b)
}

// auditOf reads every audit record of visit id through GET /v1/audit.
func auditOf(t *testing.T, e *testenv.Env, id string) []audit.Record {
	t.Helper()
	var page struct {
		Records []audit.Record `json:"records"`
	}
	if code := e.API(http.MethodGet, "/v1/audit?visit="+url.QueryEscape(id)+"&limit=1000", nil, &page); code != http.StatusOK {
		t.Fatalf("GET /v1/audit?visit=%s = %d", id, code)
	}
	return page.Records
}

// TestEveryPHIRouteIsAudited calls every route that reads or changes a
// visit's record and finds, for each, an audit record naming who, the
// route and the visit, with the outcome; no record holds a phone number,
// a name or the invite secret.
func TestEveryPHIRouteIsAudited(t *testing.T) {
	e := auditEnv(t)
	at := time.Now().Add(10 * time.Minute)
	batch := "[" + visitJSON("V-aud2", at) + "]"

	steps := []struct {
		call
		want   int
		actor  string
		action string
		visit  string
	}{
		{call{"POST", "/v1/visits", visitJSON("V-aud1", at), "ehr"}, 201, "token:ehr", "POST /v1/visits", "V-aud1"},
		{call{"GET", "/v1/visits/V-aud1", "", "ehr"}, 200, "token:ehr", "GET /v1/visits/{id}", "V-aud1"},
		{call{"GET", "/v1/visits", "", "default"}, 200, "token:default", "GET /v1/visits", "V-aud1"},
		{call{"PATCH", "/v1/visits/V-aud1", `{"patient":{"phone":"+15551230009"}}`, "ehr"}, 200, "token:ehr", "PATCH /v1/visits/{id}", "V-aud1"},
		{call{"POST", "/v1/visits/batch", batch, "ehr"}, 200, "token:ehr", "POST /v1/visits/batch", "V-aud2"},
		{call{"POST", "/v1/visits/V-aud1/tokens", `{"role":"patient"}`, "ehr"}, 200, "token:ehr", "POST /v1/visits/{id}/tokens", "V-aud1"},
		{call{"POST", "/v1/visits/V-aud1/invites", `{"phone":"` + guestPhone + `","name":"` + guestName + `","role":"guest"}`, "ehr"}, 0, "token:ehr", "POST /v1/visits/{id}/invites", "V-aud1"},
		{call{"POST", "/v1/visits/V-aud1/interpreter", `{"line":"voyce-es"}`, "ehr"}, 202, "token:ehr", "POST /v1/visits/{id}/interpreter", "V-aud1"},
		{call{"DELETE", "/v1/visits/V-aud1/interpreter", "", "ehr"}, 0, "token:ehr", "DELETE /v1/visits/{id}/interpreter", "V-aud1"},
		{call{"GET", "/admin/visits", "", "admin"}, 200, "admin:" + adminUser, "GET /admin/visits", "V-aud1"},
		{call{"GET", "/admin/visits/V-aud1", "", "admin"}, 200, "admin:" + adminUser, "GET /admin/visits/{id}", "V-aud1"},
		{call{"POST", "/v1/visits/V-aud2/cancel", "", "ehr"}, 200, "token:ehr", "POST /v1/visits/{id}/cancel", "V-aud2"},
	}
	for _, s := range steps {
		code, body := s.do(t, e)
		if s.want != 0 && code != s.want {
			t.Fatalf("%s %s = %d; want %d:\n%s", s.method, s.path, code, s.want, body)
		}
	}
	// The guest's invite link comes by SMS; the guest exchanges it.
	var secret string
	e.Eventually("the guest's invite SMS", func() bool {
		for _, m := range e.SMSTo(guestPhone) {
			if mm := regexp.MustCompile(`/join/([A-Za-z0-9_-]+)`).FindStringSubmatch(m.Body); mm != nil {
				secret = mm[1]
			}
		}
		return secret != ""
	})
	if code, body := (call{"POST", "/v1/join/" + secret, "", "none"}).do(t, e); code != http.StatusOK {
		t.Fatalf("POST /v1/join/… = %d:\n%s", code, body)
	}
	steps = append(steps, struct {
		call
		want   int
		actor  string
		action string
		visit  string
	}{call{}, 200, audit.InviteActor, "POST /v1/join/{invite}", "V-aud1"})

	// The dashboard's task views: a list of the visit's queue, one task.
	queue := e.QueueName(workflows.QueueDefault)
	var task string
	for _, id := range e.ScheduledIDs(workflows.QueueDefault) {
		if strings.HasPrefix(id, "V-aud1:") {
			task = id
		}
	}
	for _, p := range []string{"/scheduled_tasks", "/tasks/" + task} {
		if code, body := (call{"GET", "/admin/queues/api/queues/" + url.PathEscape(queue) + p, "", "admin"}).do(t, e); code != http.StatusOK {
			t.Fatalf("GET dashboard %s = %d:\n%s", p, code, body)
		}
	}

	records := append(auditOf(t, e, "V-aud1"), auditOf(t, e, "V-aud2")...)
	has := func(actor, action, id string) bool {
		for _, r := range records {
			if r.Actor == actor && r.Action == action && slicesContain(r.Visits, id) && r.Status > 0 && !r.At.IsZero() {
				return true
			}
		}
		return false
	}
	for _, s := range steps {
		if !has(s.actor, s.action, s.visit) {
			t.Errorf("no audit record of %s by %s for %s", s.action, s.actor, s.visit)
		}
	}
	if !has("admin:"+adminUser, "GET /admin/queues/api/queues/{qname}/tasks/{task_id}", "V-aud1") {
		t.Errorf("no audit record of the dashboard's task view of %s", task)
	}
	if !has("admin:"+adminUser, "GET /admin/queues/api/queues/{qname}/scheduled_tasks", "V-aud1") {
		t.Errorf("no audit record of the dashboard's scheduled task list, which shows V-aud1's tasks")
	}

	// Nothing in the trail, as the API returns it or as Redis stores it,
	// is a phone number, a name or the invite's secret.
	raw, _ := json.Marshal(records)
	var all struct {
		Records []audit.Record `json:"records"`
	}
	e.API(http.MethodGet, "/v1/audit?limit=1000", nil, &all)
	rawAll, _ := json.Marshal(all.Records)
	stored := ""
	for _, k := range e.AllKeys(e.Key("vf:audit:*")) {
		if ms, err := e.Conn.Client.XRange(context.Background(), k, "-", "+").Result(); err == nil {
			for _, m := range ms {
				stored += m.Values["r"].(string)
			}
		}
	}
	if stored == "" || len(all.Records) < len(steps) {
		t.Fatalf("the trail holds %d records (%d bytes stored); want at least %d", len(all.Records), len(stored), len(steps))
	}
	for _, phi := range []string{testenv.PatientPhone, testenv.ProviderPhone, "+15551230009", guestPhone, "Sam", "Rivera", "Dr. Lee", guestName, secret} {
		for what, s := range map[string]string{"visit trail": string(raw), "whole trail": string(rawAll), "stored": stored} {
			if strings.Contains(s, phi) {
				t.Errorf("the audit %s contains %q", what, phi)
			}
		}
	}
}

func slicesContain(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// TestReadRefusedWhenTheAuditTrailCannotBeWritten: a visit read whose
// audit record cannot be stored answers 503 without the visit.
func TestReadRefusedWhenTheAuditTrailCannotBeWritten(t *testing.T) {
	e := testenv.New(t)
	e.CreateVisit(testenv.VisitBody("V-noaudit"))
	// Today's audit stream is taken by a key of another type: every XADD
	// to it fails, as a full or broken Redis would refuse it.
	day := e.Key("vf:audit:" + time.Now().UTC().Format("2006-01-02"))
	if err := e.Conn.Client.Del(context.Background(), day).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.Conn.Client.Set(context.Background(), day, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	code, body := e.APIRaw(http.MethodGet, "/v1/visits/V-noaudit", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "audit_unavailable") {
		t.Errorf("GET /v1/visits/V-noaudit with the audit trail broken = %d %s; want 503 audit_unavailable", code, body)
	}
	if strings.Contains(string(body), testenv.PatientPhone) || strings.Contains(string(body), "Sam") {
		t.Errorf("the refused answer shows the visit: %s", body)
	}
	e.Conn.Client.Del(context.Background(), day)
	if code, body := e.APIRaw(http.MethodGet, "/v1/visits/V-noaudit", ""); code != http.StatusOK {
		t.Errorf("GET /v1/visits/V-noaudit with the trail repaired = %d %s; want 200", code, body)
	}
}

// TestNamedAPITokens: api.token and every api.tokens entry are accepted,
// anything else (a prefix, an extension, another token's name) is 401.
func TestNamedAPITokens(t *testing.T) {
	e := testenv.New(t, testenv.Configure(func(c *config.Config) {
		c.API.Tokens = []config.APIToken{{Name: "ehr", Token: ehrToken}, {Name: "cron", Token: "cron-token"}}
	}))
	for bearer, want := range map[string]int{
		e.Config.API.Token: http.StatusOK, ehrToken: http.StatusOK, "cron-token": http.StatusOK,
		ehrToken[:len(ehrToken)-1]: http.StatusUnauthorized, ehrToken + "x": http.StatusUnauthorized,
		"ehr": http.StatusUnauthorized, "": http.StatusUnauthorized,
	} {
		resp, _ := e.Do(http.MethodGet, "/v1/visits", nil, "Authorization", "Bearer "+bearer)
		if resp.StatusCode != want {
			t.Errorf("GET /v1/visits with bearer %q = %d; want %d", bearer, resp.StatusCode, want)
		}
	}
}

// hangUpWriter is a client that goes away as soon as it has its answer:
// the request's context is cancelled the moment the handler writes it.
type hangUpWriter struct {
	http.ResponseWriter
	hangUp context.CancelFunc
}

func (w hangUpWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	w.hangUp()
}

// TestChangeIsAuditedWhenTheClientHangsUp: the record of a create is
// written after the answer; a client that closes the connection right
// away (an EHR's fire-and-forget batch) must not take the record with it.
func TestChangeIsAuditedWhenTheClientHangsUp(t *testing.T) {
	e := testenv.New(t)
	ctx, hangUp := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/v1/visits", strings.NewReader(visitJSON("V-gone", time.Now().Add(time.Hour))))
	req.Header.Set("Authorization", "Bearer "+testenv.APIToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.Server.Config.Handler.ServeHTTP(hangUpWriter{ResponseWriter: rec, hangUp: hangUp}, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /v1/visits = %d %s", rec.Code, rec.Body)
	}
	if recs := auditOf(t, e, "V-gone"); len(recs) == 0 {
		t.Fatal("no audit record of the create: it was dropped with the client's connection")
	}
}

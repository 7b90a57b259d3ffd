package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/testenv"
)

// jsonOf is v as a JSON string (a request body).
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// batchAnswer is POST /v1/visits/batch's answer as a client reads it.
type batchAnswer struct {
	Created, Existing, Failed int
	Results                   []struct {
		Index, Status int
		ID            string
		Error         *struct{ Code, Message, Field string }
	}
}

// traces lists what Redis holds for visit id outside its own keys: index
// entries, the schedule and the pending-outbox mark.
func traces(t *testing.T, e *testenv.Env, id string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, k := range e.AllKeys(e.Key("vf:idx:*")) {
		if k == e.Key("vf:idx:schedule") {
			continue
		}
		if got, err := e.Conn.Client.Get(ctx, k).Result(); err == nil && got == id {
			out = append(out, k)
		}
	}
	if _, err := e.Conn.Client.ZScore(ctx, e.Key("vf:idx:schedule"), id).Result(); !errors.Is(err, redis.Nil) {
		out = append(out, "vf:idx:schedule member")
	}
	if ok, _ := e.Conn.Client.SIsMember(ctx, e.Key("vf:outbox:pending"), id).Result(); ok {
		out = append(out, "vf:outbox:pending member")
	}
	out = append(out, e.AllKeys(e.Key("vf:visit:{"+id+"}*"))...)
	return out
}

// The year-9999 input once panicked in a batch worker, killing web, workers
// and scheduler; on create and PATCH it was a plain-text 500 that left an
// index entry, a PIN and a pending mark behind.
func TestFarFutureScheduleIsRefusedEverywhereWithoutTrace(t *testing.T) {
	e := testenv.New(t)
	const far = "9999-12-31T23:59:59Z"
	farBody := testenv.VisitBody("V-far")
	farBody["scheduled_at"] = far

	code, raw := e.APIRaw(http.MethodPost, "/v1/visits/batch",
		"["+jsonOf(t, testenv.VisitBody("V-near"))+","+jsonOf(t, farBody)+"]")
	var ans batchAnswer
	if err := json.Unmarshal(raw, &ans); code != http.StatusOK || err != nil {
		t.Fatalf("batch with a %s item = %d %s; want 200 with per-item results", far, code, raw)
	}
	if r := ans.Results[1]; r.Status != http.StatusBadRequest || r.Error == nil || r.Error.Field != "scheduled_at" {
		t.Errorf("batch item at %s = %+v; want 400 naming scheduled_at", far, r)
	}
	if r := ans.Results[0]; r.Status != http.StatusCreated {
		t.Errorf("the valid batch item = %+v; want 201", r)
	}
	if left := traces(t, e, "V-far"); len(left) > 0 {
		t.Errorf("a refused batch item left %v behind", left)
	}

	var ej testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits", farBody, &ej); code != http.StatusBadRequest || ej.Error.Field != "scheduled_at" {
		t.Fatalf("create at %s = %d %+v; want 400 naming scheduled_at", far, code, ej)
	}
	if left := traces(t, e, "V-far"); len(left) > 0 {
		t.Errorf("a refused create left %v behind", left)
	}

	if code := e.API(http.MethodPatch, "/v1/visits/V-near", map[string]string{"scheduled_at": far}, &ej); code != http.StatusBadRequest || ej.Error.Field != "scheduled_at" {
		t.Fatalf("PATCH to %s = %d %+v; want 400 naming scheduled_at", far, code, ej)
	}
	if v := e.Visit("V-near"); !v.ScheduledAt.Equal(time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("after a refused PATCH scheduled_at = %v; want it unchanged", v.ScheduledAt)
	}

	// The horizon is visits.schedule_horizon (2 years by default).
	for _, c := range []struct {
		at   time.Time
		want int
	}{
		{time.Now().Add(2*365*24*time.Hour + 24*time.Hour), http.StatusBadRequest},
		{time.Now().Add(365 * 24 * time.Hour), http.StatusCreated},
	} {
		b := testenv.VisitBody("")
		delete(b, "id")
		b["scheduled_at"] = c.at.UTC().Format(time.RFC3339)
		if code := e.API(http.MethodPost, "/v1/visits", b, nil); code != c.want {
			t.Errorf("create at %s = %d; want %d", b["scheduled_at"], code, c.want)
		}
	}
}

func TestNamesIdentitiesAndBodiesAreBounded(t *testing.T) {
	e := testenv.New(t)
	person := func(identity, name string) map[string]string {
		return map[string]string{"identity": identity, "name": name, "phone": testenv.PatientPhone}
	}
	cases := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"long name", func(b map[string]any) { b["patient"] = person("pat-1", strings.Repeat("n", 201)) }, "patient.name"},
		{"long identity", func(b map[string]any) { b["provider"] = person(strings.Repeat("i", 129), "Dr") }, "provider.identity"},
	}
	for _, prefix := range []string{"dialin-", "interpreter-", "guest-", "Interpreter-"} {
		cases = append(cases, struct {
			name  string
			edit  func(map[string]any)
			field string
		}{"reserved " + prefix, func(b map[string]any) { b["patient"] = person(prefix+"V-b", "Sam") }, "patient.identity"},
			struct {
				name  string
				edit  func(map[string]any)
				field string
			}{"reserved provider " + prefix, func(b map[string]any) { b["provider"] = person(prefix+"x", "Dr") }, "provider.identity"})
	}
	for _, c := range cases {
		b := testenv.VisitBody("V-b")
		c.edit(b)
		var ej testenv.ErrorBody
		if code := e.API(http.MethodPost, "/v1/visits", b, &ej); code != http.StatusBadRequest || ej.Error.Field != c.field {
			t.Errorf("%s: create = %d %+v; want 400 naming %s", c.name, code, ej, c.field)
		}
	}
	if left := traces(t, e, "V-b"); len(left) > 0 {
		t.Errorf("refused creates left %v behind", left)
	}

	body := jsonOf(t, testenv.VisitBody("V-trail"))
	for _, trailing := range []string{body, "garbage", `{"id":"V-other"}`} {
		code, raw := e.APIRaw(http.MethodPost, "/v1/visits", body+"\n"+trailing)
		var ej testenv.ErrorBody
		_ = json.Unmarshal(raw, &ej)
		if code != http.StatusBadRequest || ej.Error.Field != "body" {
			t.Errorf("create followed by %.20q = %d %s; want 400 naming body", trailing, code, raw)
		}
	}
	code, raw := e.APIRaw(http.MethodPost, "/v1/visits/batch", "["+body+"] []")
	if code != http.StatusBadRequest || !strings.Contains(string(raw), `"field":"body"`) {
		t.Errorf("batch array followed by more = %d %s; want 400 naming body", code, raw)
	}

	e.CreateVisit(testenv.VisitBody("V-p"))
	var ej testenv.ErrorBody
	long := strings.Repeat("é", 201)
	if code := e.API(http.MethodPatch, "/v1/visits/V-p", map[string]any{"patient": map[string]string{"name": long}}, &ej); code != http.StatusBadRequest || ej.Error.Field != "patient.name" {
		t.Errorf("PATCH with a 201-character name = %d %+v; want 400 naming patient.name", code, ej)
	}
	if code, raw := e.APIRaw(http.MethodPatch, "/v1/visits/V-p", `{"patient":{"name":"Al"}} {"patient":{"name":"Bo"}}`); code != http.StatusBadRequest {
		t.Errorf("PATCH followed by a second object = %d %s; want 400", code, raw)
	}
	if v := e.Visit("V-p"); v.Patient.Name != "Sam" {
		t.Errorf("after refused PATCHes the patient's name is %q; want Sam", v.Patient.Name)
	}
}

// Concurrent creates of one id each reserved a dial-in PIN; the losers
// kept theirs, so every race used up PINs no visit held.
func TestRacingCreatesOfOneIDKeepOnePIN(t *testing.T) {
	e := testenv.New(t)
	const n = 24
	items := make([]string, n)
	for i := range items {
		items[i] = jsonOf(t, testenv.VisitBody("V-race"))
	}
	code, raw := e.APIRaw(http.MethodPost, "/v1/visits/batch", "["+strings.Join(items, ",")+"]")
	var ans batchAnswer
	if err := json.Unmarshal(raw, &ans); code != http.StatusOK || err != nil || ans.Created != 1 || ans.Existing != n-1 {
		t.Fatalf("batch of %d identical creates = %d %s; want 1 created, %d existing", n, code, raw, n-1)
	}
	v := e.Visit("V-race")
	pins := e.AllKeys(e.Key("vf:idx:pin:*"))
	if len(pins) != 1 || pins[0] != e.Key("vf:idx:pin:"+v.DialIn.PIN) {
		t.Errorf("PIN index after the race = %v; want only the visit's own PIN %s", pins, v.DialIn.PIN)
	}
}

// A body the route cannot hold is 413 (JSON), after authentication.
func TestAPIBodyLimitsPerRoute(t *testing.T) {
	e := testenv.New(t)
	big := testenv.VisitBody("V-big")
	big["patient"] = map[string]string{"identity": "p", "name": strings.Repeat("x", 70<<10)}
	var ej testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits", big, &ej); code != http.StatusRequestEntityTooLarge || ej.Error.Code != "too_large" {
		t.Errorf("a 70 KiB create = %d %+v; want 413 too_large", code, ej)
	}
	// The batch route takes far more than one visit's limit.
	var lines []string
	for i := 0; i < 600; i++ {
		lines = append(lines, jsonOf(t, testenv.VisitBody(fmt.Sprintf("V-bulk-%d", i))))
	}
	code, raw := e.APIRaw(http.MethodPost, "/v1/visits/batch", strings.Join(lines, "\n"))
	var ans batchAnswer
	if err := json.Unmarshal(raw, &ans); code != http.StatusOK || err != nil || ans.Created != len(lines) {
		t.Errorf("batch of %d visits (%d KiB) = %d, %d created; want 200, all created", len(lines), len(strings.Join(lines, "\n"))>>10, code, ans.Created)
	}
	var v handlers.VisitView
	if code := e.API(http.MethodGet, "/v1/visits/V-bulk-599", nil, &v); code != http.StatusOK {
		t.Errorf("GET the last batch visit = %d; want 200", code)
	}
}

// A batch past its 32 MiB is 413 whether it declares its length or streams
// it (chunked), and creates nothing.
func TestBatchPastItsLimitIs413(t *testing.T) {
	e := testenv.New(t)
	// Padded with white space: 10,000 real visits stay well under 32 MiB.
	line := jsonOf(t, testenv.VisitBody("V-over")) + strings.Repeat(" ", 4000) + "\n"
	body := strings.Repeat(line, (33<<20)/len(line))
	for _, c := range []struct {
		name string
		body io.Reader
	}{
		{"declared length", strings.NewReader(body)},
		{"chunked", io.MultiReader(strings.NewReader(body))}, // hides the length
	} {
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/v1/visits/batch", c.body)
		req.Header.Set("Authorization", "Bearer "+testenv.APIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(raw), `"too_large"`) {
			t.Errorf("%s: a %d MiB batch = %d %s; want 413 too_large", c.name, len(body)>>20, resp.StatusCode, raw)
		}
	}
	if left := traces(t, e, "V-over"); len(left) > 0 {
		t.Errorf("a refused batch left %v behind", left)
	}
}

package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

func TestCreateIsIdempotentWithClientID(t *testing.T) {
	e := testenv.New(t)
	first := e.CreateVisit(testenv.VisitBody("V-idem"))
	var again handlers.VisitView
	if code := e.API(http.MethodPost, "/v1/visits", testenv.VisitBody("V-idem"), &again); code != http.StatusOK {
		t.Fatalf("same body again = %d; want 200", code)
	}
	if again.ID != first.ID || again.DialIn.PIN != first.DialIn.PIN {
		t.Fatalf("same body again returned %+v; want the first visit %+v", again, first)
	}
	changed := testenv.VisitBody("V-idem")
	changed["scheduled_at"] = "2026-12-02T15:00:00Z"
	var ej testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits", changed, &ej); code != http.StatusConflict || ej.Error.Code != "conflict" {
		t.Fatalf("different body = %d %+v; want 409 conflict", code, ej)
	}
	var gen handlers.VisitView
	body := testenv.VisitBody("")
	delete(body, "id")
	if code := e.API(http.MethodPost, "/v1/visits", body, &gen); code != http.StatusCreated || !strings.HasPrefix(gen.ID, "V-") {
		t.Fatalf("create without id = %d %q; want 201 with a generated id", code, gen.ID)
	}
}

func TestCreateValidationNamesTheField(t *testing.T) {
	e := testenv.New(t)
	cases := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{"bad id", func(b map[string]any) { b["id"] = "has space" }, "id"},
		{"bad time", func(b map[string]any) { b["scheduled_at"] = "tomorrow" }, "scheduled_at"},
		{"bad zone", func(b map[string]any) { b["timezone"] = "Mars/Olympus" }, "timezone"},
		{"bad phone", func(b map[string]any) {
			b["patient"] = map[string]string{"identity": "p", "phone": "555-1234"}
		}, "patient.phone"},
		{"no provider identity", func(b map[string]any) { b["provider"] = map[string]string{} }, "provider.identity"},
		{"unknown field", func(b map[string]any) { b["sheduled_at"] = "x" }, "body"},
	}
	for _, c := range cases {
		b := testenv.VisitBody("V-val")
		c.edit(b)
		var ej testenv.ErrorBody
		code := e.API(http.MethodPost, "/v1/visits", b, &ej)
		if code != http.StatusBadRequest || ej.Error.Field != c.field {
			t.Errorf("%s: %d field %q (%s); want 400 naming %q", c.name, code, ej.Error.Field, ej.Error.Message, c.field)
		}
		if strings.Contains(ej.Error.Message, "555-1234") {
			t.Errorf("%s: error message repeats the phone number: %q", c.name, ej.Error.Message)
		}
	}
	var ej testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits", "{not json", &ej); code != http.StatusBadRequest {
		t.Errorf("malformed JSON = %d; want 400", code)
	}
}

func TestAPIAuthAndNotFound(t *testing.T) {
	e := testenv.New(t)
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/v1/visits", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no bearer = %d; want 401", resp.StatusCode)
	}
	var ej testenv.ErrorBody
	if code := e.API(http.MethodGet, "/v1/visits/nope", nil, &ej); code != http.StatusNotFound {
		t.Fatalf("unknown visit = %d; want 404", code)
	}
	if code := e.API(http.MethodPost, "/v1/visits/nope/cancel", nil, &ej); code != http.StatusNotFound {
		t.Fatalf("cancel unknown visit = %d; want 404", code)
	}
}

func TestCancelCompletedIs422(t *testing.T) {
	e := testenv.New(t)
	e.CreateVisit(testenv.VisitBody("V-done"))
	deliver(e, "V-done", join("PA1", "pat-8812", 0))
	deliver(e, "V-done", join("PA2", "dr-lee", 1))
	deliver(e, "V-done", roomEnd(30))
	var ej testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits/V-done/cancel", nil, &ej); code != http.StatusUnprocessableEntity {
		t.Fatalf("cancel completed = %d; want 422", code)
	}
}

func TestListFiltersAndPaginates(t *testing.T) {
	e := testenv.New(t)
	for _, id := range []string{"L1", "L2", "L3"} {
		e.CreateVisit(testenv.VisitBody(id))
	}
	e.API(http.MethodPost, "/v1/visits/L2/cancel", nil, nil)
	var page struct {
		Visits     []handlers.VisitView `json:"visits"`
		NextCursor string               `json:"next_cursor"`
	}
	if code := e.API(http.MethodGet, "/v1/visits?state=cancelled", nil, &page); code != 200 || len(page.Visits) != 1 || page.Visits[0].ID != "L2" {
		t.Fatalf("list cancelled = %d %+v; want L2 only", code, page.Visits)
	}
	seen := map[string]bool{}
	cursor := ""
	for i := 0; i < 5; i++ {
		page.Visits, page.NextCursor = nil, ""
		e.API(http.MethodGet, "/v1/visits?limit=1&cursor="+cursor, nil, &page)
		for _, v := range page.Visits {
			seen[v.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 3 {
		t.Fatalf("paging with limit=1 saw %v; want 3 visits", seen)
	}
	var ej testenv.ErrorBody
	if code := e.API(http.MethodGet, "/v1/visits?state=bogus", nil, &ej); code != 400 || ej.Error.Field != "state" {
		t.Fatalf("bad state filter = %d %+v; want 400 naming state", code, ej)
	}
}

// TestLegRoutesAreGuarded: the TwiML endpoints refuse what Twilio did not
// sign, and every /v1 route but join needs the bearer token.
func TestLegRoutesAreGuarded(t *testing.T) {
	// As the call legs run: emulator, workers, short sandbox minutes.
	e := testenv.New(t, testenv.WithSandbox(func(o *sandbox.Options) { o.MinuteLength = 1200 * time.Millisecond }),
		testenv.WithWorkers())
	body := testenv.VisitBody("V-g")
	body["scheduled_at"] = time.Now().Add(10 * time.Minute).UTC().Format(time.RFC3339)
	v := e.CreateVisit(body)
	call := url.Values{"CallSid": {"CA00000000000000000000000000000009"}, "From": {"+15557650009"}}
	pin := url.Values{"CallSid": call["CallSid"], "From": call["From"], "Digits": {v.DialIn.PIN}}
	for _, path := range []string{"/twilio/voice/incoming", "/twilio/voice/pin?try=1",
		"/twilio/voice/bridge?visit=V-g&leg=interpreter", "/twilio/voice/dialin/connect?visit=V-g&hold=1"} {
		if resp := e.PostForm(path, pin); resp.StatusCode != http.StatusForbidden {
			t.Errorf("unsigned POST %s = %d; want 403", path, resp.StatusCode)
		}
		forged := twiliosig.Sign("wrong-token", e.URL+path, pin)
		if resp := e.PostForm(path, pin, twiliosig.Header, forged); resp.StatusCode != http.StatusForbidden {
			t.Errorf("forged POST %s = %d; want 403", path, resp.StatusCode)
		}
	}
	// Signed for another PIN: Digits are part of what Twilio signs.
	other := url.Values{"CallSid": call["CallSid"], "From": call["From"], "Digits": {"999999"}}
	if resp := e.PostForm("/twilio/voice/pin?try=1", pin, twiliosig.Header, twiliosig.Sign(testenv.AuthToken, e.URL+"/twilio/voice/pin?try=1", other)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PIN with a signature for other digits = %d; want 403", resp.StatusCode)
	}
	if got := e.Visit("V-g"); len(got.Participants) != 0 || testenv.TimelineHas(got, "dial-in", "") {
		t.Fatalf("rejected requests changed the visit: %+v", got)
	}
	// A correctly signed PIN request is answered with TwiML.
	if resp := e.PostSigned("/twilio/voice/pin?try=1", pin); resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
		t.Fatalf("signed PIN = %d %s; want 200 TwiML", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	for _, r := range []struct{ method, path string }{
		{http.MethodPost, "/v1/visits/V-g/tokens"}, {http.MethodPost, "/v1/visits/V-g/invites"},
		{http.MethodPost, "/v1/visits/V-g/interpreter"}, {http.MethodDelete, "/v1/visits/V-g/interpreter"},
		{http.MethodPost, "/v1/visits/V-g/end"},
	} {
		req, _ := http.NewRequest(r.method, e.URL+r.path, strings.NewReader(`{"role":"patient"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without bearer = %d; want 401", r.method, r.path, resp.StatusCode)
		}
	}
}

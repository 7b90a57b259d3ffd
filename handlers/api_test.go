package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/visitflow/visitflow/internal/redisx/redistest"
)

func TestCreateIsIdempotentWithClientID(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	first := e.createVisit("V-idem")
	var again visitJSON
	if code := e.api(http.MethodPost, "/v1/visits", visitBody("V-idem"), &again); code != http.StatusOK {
		t.Fatalf("same body again = %d; want 200", code)
	}
	if again.ID != first.ID || again.DialIn.PIN != first.DialIn.PIN {
		t.Fatalf("same body again returned %+v; want the first visit %+v", again, first)
	}
	changed := visitBody("V-idem")
	changed["scheduled_at"] = "2026-12-02T15:00:00Z"
	var ej errorJSON
	if code := e.api(http.MethodPost, "/v1/visits", changed, &ej); code != http.StatusConflict || ej.Error.Code != "conflict" {
		t.Fatalf("different body = %d %+v; want 409 conflict", code, ej)
	}
	var gen visitJSON
	body := visitBody("")
	delete(body, "id")
	if code := e.api(http.MethodPost, "/v1/visits", body, &gen); code != http.StatusCreated || !strings.HasPrefix(gen.ID, "V-") {
		t.Fatalf("create without id = %d %q; want 201 with a generated id", code, gen.ID)
	}
}

func TestCreateValidationNamesTheField(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
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
		b := visitBody("V-val")
		c.edit(b)
		var ej errorJSON
		code := e.api(http.MethodPost, "/v1/visits", b, &ej)
		if code != http.StatusBadRequest || ej.Error.Field != c.field {
			t.Errorf("%s: %d field %q (%s); want 400 naming %q", c.name, code, ej.Error.Field, ej.Error.Message, c.field)
		}
		if strings.Contains(ej.Error.Message, "555-1234") {
			t.Errorf("%s: error message repeats the phone number: %q", c.name, ej.Error.Message)
		}
	}
	var ej errorJSON
	if code := e.api(http.MethodPost, "/v1/visits", "{not json", &ej); code != http.StatusBadRequest {
		t.Errorf("malformed JSON = %d; want 400", code)
	}
}

func TestAPIAuthAndNotFound(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	req, _ := http.NewRequest(http.MethodGet, e.url+"/v1/visits", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no bearer = %d; want 401", resp.StatusCode)
	}
	var ej errorJSON
	if code := e.api(http.MethodGet, "/v1/visits/nope", nil, &ej); code != http.StatusNotFound {
		t.Fatalf("unknown visit = %d; want 404", code)
	}
	if code := e.api(http.MethodPost, "/v1/visits/nope/cancel", nil, &ej); code != http.StatusNotFound {
		t.Fatalf("cancel unknown visit = %d; want 404", code)
	}
}

func TestCancelCompletedIs422(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	e.createVisit("V-done")
	e.deliver("V-done", join("PA1", "pat-8812", 0))
	e.deliver("V-done", join("PA2", "dr-lee", 1))
	e.deliver("V-done", roomEnd(30))
	var ej errorJSON
	if code := e.api(http.MethodPost, "/v1/visits/V-done/cancel", nil, &ej); code != http.StatusUnprocessableEntity {
		t.Fatalf("cancel completed = %d; want 422", code)
	}
}

func TestListFiltersAndPaginates(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	for _, id := range []string{"L1", "L2", "L3"} {
		e.createVisit(id)
	}
	e.api(http.MethodPost, "/v1/visits/L2/cancel", nil, nil)
	var page struct {
		Visits     []visitJSON `json:"visits"`
		NextCursor string      `json:"next_cursor"`
	}
	if code := e.api(http.MethodGet, "/v1/visits?state=cancelled", nil, &page); code != 200 || len(page.Visits) != 1 || page.Visits[0].ID != "L2" {
		t.Fatalf("list cancelled = %d %+v; want L2 only", code, page.Visits)
	}
	seen := map[string]bool{}
	cursor := ""
	for i := 0; i < 5; i++ {
		page.Visits, page.NextCursor = nil, ""
		e.api(http.MethodGet, "/v1/visits?limit=1&cursor="+cursor, nil, &page)
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
	var ej errorJSON
	if code := e.api(http.MethodGet, "/v1/visits?state=bogus", nil, &ej); code != 400 || ej.Error.Field != "state" {
		t.Fatalf("bad state filter = %d %+v; want 400 naming state", code, ej)
	}
}

package workflows_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/workflows"
)

func TestBatchCreateArrayAndJSONLines(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	item := func(id string) string {
		return `{"id":"` + id + `","scheduled_at":"` + at + `","provider":{"identity":"dr"},"patient":{"identity":"p","phone":"` + patientPhone + `"}}`
	}
	code, body := env.APIRaw(http.MethodPost, "/v1/visits/batch",
		"["+item("B-1")+","+item("B-2")+`,{"id":"B-3","scheduled_at":"tomorrow"},`+item("B-1")+"]")
	if code != http.StatusOK {
		t.Fatalf("batch = %d %s", code, body)
	}
	for _, want := range []string{`"created":2`, `"existing":1`, `"failed":1`, `"index":2,"status":400`, `"field":"scheduled_at"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("batch answer %s lacks %s", body, want)
		}
	}
	code, body = env.APIRaw(http.MethodPost, "/v1/visits/batch", item("B-4")+"\n"+item("B-5")+"\n")
	if code != http.StatusOK || !strings.Contains(string(body), `"created":2`) {
		t.Fatalf("JSON lines batch = %d %s", code, body)
	}
	if n := len(env.ScheduledIDs(workflows.QueueDefault)); n != 4*4 {
		t.Fatalf("scheduled tasks = %d; want 4 per visit", n)
	}
	var lines strings.Builder
	for i := 0; i <= workflows.BatchLimit; i++ {
		lines.WriteString("{}\n")
	}
	if code, body := env.APIRaw(http.MethodPost, "/v1/visits/batch", lines.String()); code != http.StatusBadRequest {
		t.Fatalf("batch of %d = %d %s; want 400", workflows.BatchLimit+1, code, body)
	}
}

package handlers_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/testenv"
)

// scrape returns the /metrics text.
func scrape(e *testenv.Env) string {
	e.T.Helper()
	resp, body := e.Do(http.MethodGet, "/metrics", nil)
	if resp.StatusCode != http.StatusOK {
		e.T.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	return string(body)
}

func TestMetricsCountWhatHappenedWithoutPHI(t *testing.T) {
	// Workers count jobs into the metrics the server exports, and the queue
	// sizes are watched, as cmd/visitflow wires them.
	e := testenv.New(t, testenv.WithWorkers(), testenv.WithSandbox(nil))
	e.Metrics.WatchQueues(e.Inspector)
	// Hours ahead: no room is created (and calls back) during the test.
	body := testenv.VisitBody("V-m1")
	body["scheduled_at"] = time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	e.CreateVisit(body)
	e.Visit("V-m1")
	e.API(http.MethodGet, "/v1/visits/V-unknown", nil, nil)
	deliver(e, "V-m1", join("PA1", "pat-8812", 0))
	deliver(e, "V-m1", join("PA2", "dr-lee", 3))
	e.PostForm("/twilio/video/status?visit=V-m1", join("PA3", "pat-8812", 4).params("visit-V-m1")) // unsigned
	voice := url.Values{"CallSid": {"CA0000000000000000000000000000abcd"}, "CallStatus": {"no-answer"},
		"To": {"+15551230002"}, "From": {"+15551230001"}}
	e.PostSigned("/twilio/voice/status?visit=V-m1", voice)
	e.API(http.MethodPost, "/v1/visits/V-m1/cancel", nil, nil) // a transition the API causes

	// The patient entering the waiting room texts the provider through a job
	// on the workers; wait until it is counted.
	wantJobs := `visitflow_jobs_total{outcome="ok",type="visit:patient-waiting-sms"} 1`
	var text string
	func() {
		defer func() { // runs on the time-out's Fatal too: show what was counted
			if !strings.Contains(text, wantJobs) {
				t.Logf("/metrics jobs:\n%s", grep(text, "visitflow_jobs"))
			}
		}()
		testenv.Eventually(t, "/metrics showing "+wantJobs, func() bool {
			text = scrape(e)
			return strings.Contains(text, wantJobs)
		})
	}()

	for _, want := range []string{
		`visitflow_webhook_requests_total{outcome="applied",route="/twilio/video/status"} 2`,
		`visitflow_webhook_requests_total{outcome="forbidden",route="/twilio/video/status"} 1`,
		`visitflow_signature_rejections_total{reason="missing",route="/twilio/video/status"} 1`,
		`visitflow_callback_commit_seconds_count{route="/twilio/video/status"} 2`,
		`visitflow_state_transitions_total{from="scheduled",to="waiting"} 1`,
		`visitflow_state_transitions_total{from="waiting",to="in_progress"} 1`,
		`visitflow_state_transitions_total{from="in_progress",to="cancelled"} 1`,
		`visitflow_api_requests_total{code="201",route="/v1/visits"} 1`,
		`visitflow_api_requests_total{code="200",route="/v1/visits/{id}"} 1`,
		`visitflow_api_requests_total{code="404",route="/v1/visits/{id}"} 1`,
		`visitflow_call_outcomes_total{status="no-answer"} 1`,
		`asynq_queue_size{queue=`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// No label value may be an id, a phone, a name, an identity or a room.
	labels := regexp.MustCompile(`\{[^}]*\}`).FindAllString(text, -1)
	phi := regexp.MustCompile(`V-m1|V-unknown|\+1555|pat-8812|dr-lee|visit-V|CA0000|PA[0-9]`)
	for _, l := range labels {
		if phi.MatchString(l) {
			t.Errorf("metric labels carry an id or PHI: %s", l)
		}
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

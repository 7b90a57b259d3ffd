package handlers_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/workflows"
)

// scrape returns the /metrics text.
func (e *env) scrape() string {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	return string(b)
}

// startWorkers runs an Asynq server whose jobs are counted in e.metrics, as
// cmd/visitflow wires it.
func (e *env) startWorkers() {
	e.t.Helper()
	srv := asynq.NewServerFromRedisClient(e.conn.Client, asynq.Config{
		Concurrency: 2, Queues: workflows.Queues,
		LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.Use(e.metrics.JobMiddleware)
	e.engine.Register(mux)
	if err := srv.Start(mux); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(srv.Shutdown)
	e.metrics.WatchQueues(asynq.NewInspectorFromRedisClient(e.conn.Client))
}

func TestMetricsCountWhatHappenedWithoutPHI(t *testing.T) {
	e := newEnv(t, redistest.ForTest(t))
	e.startWorkers()
	e.createVisit("V-m1")
	e.getVisit("V-m1")
	e.api(http.MethodGet, "/v1/visits/V-unknown", nil, nil)
	e.deliver("V-m1", join("PA1", "pat-8812", 0))
	e.deliver("V-m1", join("PA2", "dr-lee", 3))
	e.postForm("/twilio/video/status?visit=V-m1", join("PA3", "pat-8812", 4).params("visit-V-m1")) // unsigned
	voice := url.Values{"CallSid": {"CA0000000000000000000000000000abcd"}, "CallStatus": {"no-answer"},
		"To": {"+15551230002"}, "From": {"+15551230001"}}
	e.postSigned("/twilio/voice/status?visit=V-m1", voice)
	e.api(http.MethodPost, "/v1/visits/V-m1/cancel", nil, nil) // a transition the API causes

	// The state-changed jobs run on the workers; wait until both are counted.
	wantJobs := `visitflow_jobs_total{outcome="ok",type="visit:state-changed"} 3`
	var text string
	deadline := time.Now().Add(30 * time.Second)
	for {
		text = e.scrape()
		if strings.Contains(text, wantJobs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q:\n%s", wantJobs, grep(text, "visitflow_jobs"))
		}
		time.Sleep(50 * time.Millisecond)
	}

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

// Package metrics owns visitflow's Prometheus metrics. Labels carry routes,
// outcomes, states and task types only: never ids, phones or names.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors, registered on its own registry so tests
// can make as many as they like.
type Metrics struct {
	Registry *prometheus.Registry

	WebhookRequests     *prometheus.CounterVec   // route, outcome
	SignatureRejections *prometheus.CounterVec   // route, reason
	CallbackLatency     *prometheus.HistogramVec // route: request received → committed
	Transitions         *prometheus.CounterVec   // from, to
	Jobs                *prometheus.CounterVec   // type, outcome
	APIRequests         *prometheus.CounterVec   // route, code
	CallOutcomes        *prometheus.CounterVec   // status (Twilio CallStatus)
	SMSOutcomes         *prometheus.CounterVec   // status (Twilio MessageStatus)
	Reconciles          *prometheus.CounterVec   // outcome: read, recent, failed
	ReconciledFacts     prometheus.Counter       // facts learnt from Twilio's REST API, not a callback

	DialInFailedPINs      prometheus.Counter // wrong PINs (and right ones outside their window), all callers
	DialInBudgetExhausted prometheus.Counter // budget windows whose failed-PIN budget was used up
	DialInLimitedCalls    prometheus.Counter // calls sent to the limited path (hold, fewer tries)
}

// New registers every collector.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_webhook_requests_total",
			Help: "Twilio webhook requests by route and outcome (applied, duplicate, unmatched, invalid, forbidden, too_large, unavailable).",
		}, []string{"route", "outcome"}),
		SignatureRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_signature_rejections_total",
			Help: "Webhook requests refused for a missing or invalid X-Twilio-Signature.",
		}, []string{"route", "reason"}),
		CallbackLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "visitflow_callback_commit_seconds",
			Help:    "Time from receiving a callback to committing it in Redis.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"route"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_state_transitions_total",
			Help: "Visit state changes.",
		}, []string{"from", "to"}),
		Jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_jobs_total",
			Help: "Asynq jobs processed by type and outcome (ok, error, skipped).",
		}, []string{"type", "outcome"}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_api_requests_total",
			Help: "Scheduling API requests by route and status code.",
		}, []string{"route", "code"}),
		CallOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_call_outcomes_total",
			Help: "Voice call status callbacks by CallStatus (queued, ringing, in-progress, completed, busy, failed, no-answer, canceled, other).",
		}, []string{"status"}),
		SMSOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_sms_outcomes_total",
			Help: "SMS status callbacks by MessageStatus (queued, sent, delivered, undelivered, failed, other …).",
		}, []string{"status"}),
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visitflow_reconcile_visits_total",
			Help: "Visits looked at by reconciliation: read (Twilio's REST API was asked), recent (a callback arrived within the interval, nothing asked), failed (the REST read failed).",
		}, []string{"outcome"}),
		ReconciledFacts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visitflow_reconciled_facts_total",
			Help: "Facts (connections, disconnections, room ends, call statuses) learnt from Twilio's REST API because their callback had not arrived.",
		}),
		DialInFailedPINs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visitflow_dialin_failed_pins_total",
			Help: "Dial-in PINs that opened no visit (wrong, or right outside the visit's window), across all callers.",
		}),
		DialInBudgetExhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visitflow_dialin_budget_exhausted_total",
			Help: "Windows of visits.dial_in_failure_budget_window in which the failed-PIN budget was used up (a guessing campaign, or a flood of genuine mistakes).",
		}),
		DialInLimitedCalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "visitflow_dialin_limited_calls_total",
			Help: "Dial-in calls put on the limited path (a hold before the prompt, fewer PIN tries) by the per-caller limit or the failed-PIN budget.",
		}),
	}
	r.MustRegister(m.WebhookRequests, m.SignatureRejections, m.CallbackLatency, m.Transitions, m.Jobs, m.APIRequests,
		m.CallOutcomes, m.SMSOutcomes, m.Reconciles, m.ReconciledFacts, m.DialInFailedPINs, m.DialInBudgetExhausted, m.DialInLimitedCalls,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

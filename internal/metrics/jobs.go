package metrics

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"
	queuemetrics "github.com/hibiken/asynq/x/metrics"
)

// Job outcomes, the values of the Jobs counter's outcome label.
const (
	JobOK      = "ok"      // the handler returned nil
	JobSkipped = "skipped" // asynq.SkipRetry: will never succeed, not retried
	JobError   = "error"   // any other error: Asynq retries with backoff
)

// JobMiddleware counts every processed task by its type and outcome. Use it
// on the worker's ServeMux (mux.Use) so every handler, including ones added
// later, is counted. Task types are a fixed set of constants, never ids.
func (m *Metrics) JobMiddleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		m.Jobs.WithLabelValues(t.Type(), JobOutcome(err)).Inc()
		return err
	})
}

// JobOutcome maps a handler's error to the outcome label.
func JobOutcome(err error) string {
	switch {
	case err == nil:
		return JobOK
	case errors.Is(err, asynq.SkipRetry):
		return JobSkipped
	default:
		return JobError
	}
}

// WatchQueues adds Asynq's queue gauges (asynq_tasks_enqueued_total by queue
// and state, asynq_queue_size, asynq_queue_latency_seconds, …), read through
// inspector at every scrape. Labels are queue names and task states only.
func (m *Metrics) WatchQueues(inspector *asynq.Inspector) {
	m.Registry.MustRegister(queuemetrics.NewQueueMetricsCollector(inspector))
}

// callStatuses are the CallStatus values Twilio documents; anything else is
// counted as "other" so a label can never carry free text.
var callStatuses = map[string]bool{
	"queued": true, "initiated": true, "ringing": true, "in-progress": true, "completed": true,
	"busy": true, "failed": true, "no-answer": true, "canceled": true,
}

// smsStatuses are the MessageStatus values Twilio documents.
var smsStatuses = map[string]bool{
	"accepted": true, "scheduled": true, "queued": true, "sending": true, "sent": true,
	"delivered": true, "undelivered": true, "failed": true, "read": true, "receiving": true,
	"received": true, "canceled": true, "partially_delivered": true,
}

// CallOutcome counts one voice status callback by its CallStatus.
func (m *Metrics) CallOutcome(status string) {
	m.CallOutcomes.WithLabelValues(known(callStatuses, status)).Inc()
}

// SMSOutcome counts one SMS status callback by its MessageStatus.
func (m *Metrics) SMSOutcome(status string) {
	m.SMSOutcomes.WithLabelValues(known(smsStatuses, status)).Inc()
}

func known(set map[string]bool, v string) string {
	if set[v] {
		return v
	}
	return "other"
}

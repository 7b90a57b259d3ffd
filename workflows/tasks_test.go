package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/visit"
)

// TestEveryTaskTypeHasQueueAndHandler holds the registry to itself: a type
// with a queue but no handler would sit in Asynq forever, a handler without
// a queue would never be enqueued where a worker listens.
func TestEveryTaskTypeHasQueueAndHandler(t *testing.T) {
	e := New(Deps{Config: config.Default()})
	handlers := e.handlers()
	for typ, q := range taskQueues {
		if handlers[typ] == nil {
			t.Errorf("task type %s has queue %q but no handler", typ, q)
		}
		if _, ok := Queues("ns")[QueueName("ns", q)]; !ok {
			t.Errorf("task type %s is queued on %q, which no worker serves (Queues = %v)", typ, q, Queues("ns"))
		}
	}
	for typ := range handlers {
		if _, ok := taskQueues[typ]; !ok {
			t.Errorf("handler for %s has no queue in taskQueues", typ)
		}
	}
	mux := asynq.NewServeMux()
	e.Register(mux)
	for typ := range taskQueues {
		if typ == TypeOutboxSweep || typ == TypeRetentionPurge || typ == TypeReconcile {
			continue // maintenance payloads are not visit payloads
		}
		if typ == TypeStateChanged {
			continue // retired: it drains whatever an earlier version enqueued
		}
		// A payload no handler can read must fail without retry, not be
		// "not found" by the mux (which would mean the type is unregistered).
		err := mux.ProcessTask(context.Background(), asynq.NewTask(typ, []byte("not json")))
		if err == nil || !strings.Contains(err.Error(), "bad payload") || !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ProcessTask(%s, garbage) = %v; want a bad-payload error from its handler, not retried", typ, err)
		}
		// A payload of another shape (an older build's overloaded
		// purpose/n) is refused, not read as some other job.
		legacy := []byte(`{"visit_id":"V-1","purpose":"r1-a1","n":1}`)
		if err := mux.ProcessTask(context.Background(), asynq.NewTask(typ, legacy)); err == nil || !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("ProcessTask(%s, legacy payload) = %v; want refused without retry", typ, err)
		}
	}
	// A state-changed task an earlier version enqueued completes, doing nothing.
	old := []byte(`{"visit_id":"V-1","transition":1,"from":"scheduled","to":"waiting","at":"2026-12-01T15:00:00Z"}`)
	if err := mux.ProcessTask(context.Background(), asynq.NewTask(TypeStateChanged, old)); err != nil {
		t.Errorf("ProcessTask(%s, an earlier version's task) = %v; want it drained", TypeStateChanged, err)
	}
}

// TestJobConstructorsKeepTaskIDs pins the task IDs: they are the outbox's
// idempotency keys, so changing one re-runs (or orphans) queued jobs.
func TestJobConstructorsKeepTaskIDs(t *testing.T) {
	at := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	v := &visit.Visit{ID: "V-1", Schedule: 2, Transitions: 3, Room: visit.Room{SID: "RM1"},
		Interpreter: &visit.InterpreterLeg{Request: 4}}
	tests := []struct {
		job         visit.Job
		id, queue   string
		wantPayload Payload
	}{
		{patientWaitingJob(v), "V-1:visit:patient-waiting-sms:t3", QueueDefault, Payload{VisitID: "V-1", Transition: 3}},
		{roomCreateJob(v, at), "V-1:room:create:s2", QueueCritical, Payload{VisitID: "V-1", Schedule: 2}},
		{roomEnsureJob(v), "V-1:room:ensure:dialin", QueueCritical, Payload{VisitID: "V-1"}},
		{roomEndJob(v), "V-1:room:end:RM1", QueueCritical, Payload{VisitID: "V-1"}},
		{roomEndOnRequestJob(v), "V-1:room:end:end", QueueCritical, Payload{VisitID: "V-1"}},
		{reminderJob(v, Reminder{Name: "r24h0m0s", At: at}), "V-1:reminder:send:r24h0m0s:s2", QueueDefault,
			Payload{VisitID: "V-1", Schedule: 2, Reminder: "r24h0m0s"}},
		{noShowCheckJob(v, at), "V-1:visit:no-show-check:s2", QueueDefault, Payload{VisitID: "V-1", Schedule: 2}},
		{timersJob(v, 3, at), "V-1:visit:timers:t3:s2", QueueDefault, Payload{VisitID: "V-1", Schedule: 2, Step: 3}},
		{providerLateJob(v, at), "V-1:visit:provider-late-check:t3", QueueDefault, Payload{VisitID: "V-1", Transition: 3}},
		{followupJob(v, at), "V-1:followup:send:followup", QueueDefault, Payload{VisitID: "V-1"}},
		{cancelSMSJob(v), "V-1:visit:cancel-sms:cancelled", QueueDefault, Payload{VisitID: "V-1"}},
		{dialJob(v, 2, at), "V-1:interpreter:dial:r4-a2", QueueCritical, Payload{VisitID: "V-1", Request: 4, Attempt: 2}},
		{dialCheckJob(v, 2, at), "V-1:interpreter:check:r4-a2", QueueCritical, Payload{VisitID: "V-1", Request: 4, Attempt: 2}},
		{hangupJob(v), "V-1:interpreter:hangup:r4", QueueCritical, Payload{VisitID: "V-1", Request: 4}},
		{interpreterFailedSMSJob(v), "V-1:interpreter:failed-sms:r4", QueueDefault, Payload{VisitID: "V-1", Request: 4}},
	}
	for _, tt := range tests {
		if tt.job.ID != tt.id || tt.job.Queue != tt.queue {
			t.Errorf("job %s on %s; want %s on %s", tt.job.ID, tt.job.Queue, tt.id, tt.queue)
		}
		var got Payload
		if err := json.Unmarshal(tt.job.Payload, &got); err != nil || !reflect.DeepEqual(got, tt.wantPayload) {
			t.Errorf("job %s payload = %+v (%v); want %+v", tt.id, got, err, tt.wantPayload)
		}
	}
	if d := roomCreateDeletion(v, 1); d.ID != "V-1:room:create:s1" || !d.Delete || d.Queue != QueueCritical {
		t.Errorf("roomCreateDeletion(v, 1) = %+v; want a deletion of V-1:room:create:s1 on critical", d)
	}
}

// TestDashboardShowsEveryPayloadField: the redacting formatter lists every
// field Payload has, so support staff see a job's schedule, attempt… and
// nothing else.
func TestDashboardShowsEveryPayloadField(t *testing.T) {
	typ := reflect.TypeOf(Payload{})
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !payloadKeys[name] {
			t.Errorf("Payload field %s (json %q) is not in the dashboard's allow-list", typ.Field(i).Name, name)
		}
	}
	got := RedactPayload("x", []byte(`{"visit_id":"V-1","request":2,"attempt":1}`))
	if want := `{attempt: 1, request: 2, visit_id: "V-1"}`; got != want {
		t.Errorf("RedactPayload() = %s; want %s", got, want)
	}
}

package workflows

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/panics"
	"github.com/visitflow/visitflow/internal/visit"
)

// This file is the map of every job visitflow runs, as handlers/routes.go is
// the map of every route: the task types, their queues, what their payload
// carries and what their handler re-checks, the handler registration, and
// the typed constructors every other file uses to make a job.
//
// Every job re-reads its visit when it runs and does nothing (successfully)
// when it no longer applies: the re-checks below are what "applies" means.
// Task IDs are <visit>:<type>[:<purpose>], so one purpose is one task ever.

// Queues, by urgency. Webhook-driven work (interpreter, room) is critical;
// SMS is default; maintenance is low.
const (
	QueueCritical = "critical"
	QueueDefault  = "default"
	QueueLow      = "low"
)

// queueWeights is the weight of each queue for the Asynq server.
var queueWeights = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueLow: 1}

// QueueName is the Asynq queue that holds queue's tasks in namespace
// (redis.namespace): "<namespace>:<queue>", or queue itself when namespace
// is empty. Asynq keeps each queue under asynq:{<name>}:…, so deployments
// with different namespaces never take each other's tasks.
func QueueName(namespace, queue string) string {
	if namespace == "" {
		return queue
	}
	return namespace + ":" + queue
}

// Queues returns the Asynq server's queue weights in namespace.
func Queues(namespace string) map[string]int {
	out := make(map[string]int, len(queueWeights))
	for q, w := range queueWeights {
		out[QueueName(namespace, q)] = w
	}
	return out
}

// QueueNames returns every queue of namespace, most urgent first.
func QueueNames(namespace string) []string {
	return []string{QueueName(namespace, QueueCritical), QueueName(namespace, QueueDefault), QueueName(namespace, QueueLow)}
}

// Task types: "domain:verb".
const (
	// TypeStateChanged is retired: earlier versions recorded each state
	// change through it. Its handler acknowledges leftover tasks; nothing
	// enqueues it (the timeline derives state-changed rows on read).
	TypeStateChanged = "visit:state-changed"

	// TypeRoomCreate creates the visit's Group Room (with our status
	// callback) visits.room_lead before scheduled_at. Payload: schedule.
	// Re-checks: no room yet, still that schedule, visit not finished.
	TypeRoomCreate = "room:create"
	// TypeRoomEnsure creates the room now, outside the schedule (a dial-in
	// caller holding for it). Payload: visit only. Re-checks: not finished.
	TypeRoomEnsure = "room:ensure"
	// TypeRoomEnd ends the room of a visit ended through the API or
	// cancelled. Payload: visit only (the purpose names the room SID).
	// Re-checks: a room exists and neither Twilio nor we ended it already.
	TypeRoomEnd = "room:end"

	// TypeReminderSend sends one reminder SMS. Payload: schedule, reminder.
	// Re-checks: still that schedule, the patient has not joined (scheduled
	// or provider_waiting), not sent before.
	TypeReminderSend = "reminder:send"
	// TypeNoShowCheck records that the no-show deadline passed (the state
	// derives no_show when the patient never joined). Payload: schedule.
	// Re-checks: still that schedule, visit not finished.
	TypeNoShowCheck = "visit:no-show-check"
	// TypeProviderLateCheck texts provider and patient when the patient has
	// waited provider_late_after alone. Payload: transition (the one that
	// made the visit waiting). Re-checks: no transition since, still
	// waiting, each SMS not sent before.
	TypeProviderLateCheck = "visit:provider-late-check"
	// TypePatientWaitingSMS tells the provider the patient entered the
	// waiting room (visits.templates.patient_waiting). Payload: transition
	// (the one that made the visit waiting). Re-checks: still waiting, not
	// sent for that transition before.
	TypePatientWaitingSMS = "visit:patient-waiting-sms"
	// TypeFollowupSend sends the follow-up SMS after completion. Payload:
	// visit only. Re-checks: completed, not sent before.
	TypeFollowupSend = "followup:send"
	// TypeCancelSMS tells the patient the visit was cancelled
	// (visits.cancel_sms). Payload: visit only. Re-checks: cancelled, not
	// sent before.
	TypeCancelSMS = "visit:cancel-sms"

	// TypeInterpreterDial places one attempt's call. Payload: request,
	// attempt. Re-checks: the leg claims that attempt (requested, the
	// previous attempt done), visit not finished.
	TypeInterpreterDial = "interpreter:dial"
	// TypeInterpreterCheck fails an attempt claimed but never placed (a
	// worker died in between). Payload: request, attempt. Re-checks: that
	// attempt is still claimed without a call.
	TypeInterpreterCheck = "interpreter:check"
	// TypeInterpreterHangup hangs up the leg's call. Payload: request.
	// Re-checks: the leg is that request's and has a call.
	TypeInterpreterHangup = "interpreter:hangup"
	// TypeInterpreterFailedSMS tells the provider the line could not be
	// reached. Payload: request. Re-checks: that request's leg failed, not
	// sent before.
	TypeInterpreterFailedSMS = "interpreter:failed-sms"

	// TypeOutboxSweep flushes outbox entries a crash left behind (payload
	// "full" also scans the keyspace). Enqueued by the scheduler role.
	TypeOutboxSweep = "maintenance:outbox-sweep"
	// TypeRetentionPurge deletes finished visits older than
	// visits.retention and audit days older than audit.retention.
	// Enqueued by the scheduler role.
	TypeRetentionPurge = "maintenance:retention-purge"
	// TypeReconcile reads the open visits whose callbacks went quiet back
	// from Twilio's REST API and folds in what Twilio reports (reconcile.go).
	// Enqueued by the scheduler role every twilio.reconcile_interval.
	TypeReconcile = "maintenance:reconcile"
)

// The timer chain (timers.go): a visit's schedule keeps one scheduled task,
// not one per deadline.
const (
	// TypeVisitTimers enqueues the visit's schedule jobs that are due
	// (room:create, reminder:send, visit:no-show-check, each with its own
	// task ID) and schedules the next step of the chain at the next
	// deadline. Payload: schedule, step. Re-checks: still that schedule and
	// that step (a duplicate, stale or early run enqueues nothing twice).
	TypeVisitTimers = "visit:timers"
)

// taskQueues is the queue of every task type.
var taskQueues = map[string]string{
	TypeStateChanged:         QueueDefault,
	TypeRoomCreate:           QueueCritical,
	TypeRoomEnsure:           QueueCritical,
	TypeRoomEnd:              QueueCritical,
	TypeReminderSend:         QueueDefault,
	TypeNoShowCheck:          QueueDefault,
	TypeProviderLateCheck:    QueueDefault,
	TypePatientWaitingSMS:    QueueDefault,
	TypeFollowupSend:         QueueDefault,
	TypeCancelSMS:            QueueDefault,
	TypeInterpreterDial:      QueueCritical,
	TypeInterpreterCheck:     QueueCritical,
	TypeInterpreterHangup:    QueueCritical,
	TypeInterpreterFailedSMS: QueueDefault,
	TypeOutboxSweep:          QueueLow,
	TypeRetentionPurge:       QueueLow,
	TypeReconcile:            QueueLow,

	TypeVisitTimers: QueueDefault,
}

// handlers is the handler of every task type in taskQueues.
func (e *Engine) handlers() map[string]func(context.Context, *asynq.Task) error {
	return map[string]func(context.Context, *asynq.Task) error{
		TypeStateChanged:         e.handleStateChanged,
		TypeRoomCreate:           e.handleRoomCreate,
		TypeRoomEnsure:           e.handleRoomEnsure,
		TypeRoomEnd:              e.handleRoomEnd,
		TypeReminderSend:         e.handleReminder,
		TypeNoShowCheck:          e.handleNoShowCheck,
		TypeProviderLateCheck:    e.handleProviderLate,
		TypePatientWaitingSMS:    e.handlePatientWaitingSMS,
		TypeFollowupSend:         e.handleFollowup,
		TypeCancelSMS:            e.handleCancelSMS,
		TypeInterpreterDial:      e.handleInterpreterDial,
		TypeInterpreterCheck:     e.handleInterpreterCheck,
		TypeInterpreterHangup:    e.handleInterpreterHangup,
		TypeInterpreterFailedSMS: e.handleInterpreterFailedSMS,
		TypeOutboxSweep:          e.handleOutboxSweep,
		TypeRetentionPurge:       e.handleRetentionPurge,
		TypeReconcile:            e.handleReconcile,

		TypeVisitTimers: e.handleTimers,
	}
}

// Register adds every task handler to mux. Each handler's error goes
// through jobError, the one place that decides retry or not.
func (e *Engine) Register(mux *asynq.ServeMux) {
	for typ, h := range e.handlers() {
		mux.HandleFunc(typ, func(ctx context.Context, t *asynq.Task) (err error) {
			defer e.recoverJob(ctx, t, &err)
			return jobError(h(ctx, t))
		})
	}
}

// recoverJob turns a job's panic into its error, which Asynq retries.
// Asynq's own recovery would store the panic's value as the task's error,
// shown on its dashboard; the value may hold PHI, so only its kind is said,
// and the log adds the stack.
func (e *Engine) recoverJob(ctx context.Context, t *asynq.Task, err *error) {
	p := recover()
	if p == nil {
		return
	}
	id, _ := asynq.GetTaskID(ctx)
	what := panics.Describe(p)
	e.log.Error("panic running a job", zap.String("type", t.Type()), zap.String("task", id),
		zap.String("panic", what), zap.Stack("stack"))
	*err = fmt.Errorf("job %s panicked: %s", t.Type(), what)
}

// Payload is every task's payload: ids and counters only, never PHI
// (contract §7). Which fields a type uses is said at its declaration above.
type Payload struct {
	VisitID string `json:"visit_id"`
	// Schedule is the schedule generation a schedule's job belongs to; a
	// reschedule starts the next one and makes the old jobs stale.
	Schedule int `json:"schedule,omitempty"`
	// Reminder names a reminder: "r<offset>" ("r24h0m0s") or "starting-soon".
	Reminder string `json:"reminder,omitempty"`
	// Transition is the visit's transition count when the job was made.
	Transition int `json:"transition,omitempty"`
	// Request and Attempt name an interpreter request and its dial attempt
	// (both count from 1).
	Request int `json:"request,omitempty"`
	Attempt int `json:"attempt,omitempty"`

	// Step numbers the runs of a visit's timer chain within one schedule.
	Step int `json:"step,omitempty"`
}

// newJob builds an outbox entry for typ whose task ID is derived from the
// visit, the type and purpose, so one purpose can only ever be one task.
func newJob(typ string, p Payload, purpose string, processAt time.Time) visit.Job {
	id := p.VisitID + ":" + typ
	if purpose != "" {
		id += ":" + purpose
	}
	b, _ := json.Marshal(p)
	return visit.Job{ID: id, Type: typ, Queue: taskQueues[typ], Payload: b, ProcessAt: processAt}
}

// deletion is the outbox entry that removes the pending task with ID id of
// type typ (a reschedule or cancel voiding a job).
func deletion(typ, id string) visit.Job {
	return visit.Job{ID: id, Queue: taskQueues[typ], Delete: true}
}

func schedulePurpose(schedule int) string { return fmt.Sprintf("s%d", schedule) }

func requestPurpose(request int) string { return fmt.Sprintf("r%d", request) }

func attemptPurpose(request, attempt int) string { return fmt.Sprintf("r%d-a%d", request, attempt) }

// roomCreateJob creates the room of v's current schedule at at (now when zero).
func roomCreateJob(v *visit.Visit, at time.Time) visit.Job {
	return newJob(TypeRoomCreate, Payload{VisitID: v.ID, Schedule: v.Schedule}, schedulePurpose(v.Schedule), at)
}

// roomRecreateJob creates a new room for v after Twilio closed room ended
// unused; the ended room's SID makes it a purpose of its own.
func roomRecreateJob(v *visit.Visit, ended string, at time.Time) visit.Job {
	return newJob(TypeRoomCreate, Payload{VisitID: v.ID, Schedule: v.Schedule},
		schedulePurpose(v.Schedule)+":after-"+ended, at)
}

// roomCreateDeletion voids the room:create job of schedule generation schedule.
func roomCreateDeletion(v *visit.Visit, schedule int) visit.Job {
	return deletion(TypeRoomCreate, roomCreateJob(&visit.Visit{ID: v.ID, Schedule: schedule}, time.Time{}).ID)
}

func roomEnsureJob(v *visit.Visit) visit.Job {
	return newJob(TypeRoomEnsure, Payload{VisitID: v.ID}, "dialin", time.Time{})
}

// roomEndJob ends v's room; the room SID is the purpose, so a room recorded
// after the visit ended gets its own room:end.
func roomEndJob(v *visit.Visit) visit.Job {
	purpose := v.Room.SID
	if purpose == "" {
		purpose = "no-room"
	}
	return newJob(TypeRoomEnd, Payload{VisitID: v.ID}, purpose, time.Time{})
}

// roomEndOnRequestJob ends v's room because the visit was ended through the API.
func roomEndOnRequestJob(v *visit.Visit) visit.Job {
	return newJob(TypeRoomEnd, Payload{VisitID: v.ID}, "end", time.Time{})
}

func reminderJob(v *visit.Visit, r Reminder) visit.Job {
	return newJob(TypeReminderSend, Payload{VisitID: v.ID, Schedule: v.Schedule, Reminder: r.Name},
		r.Name+":"+schedulePurpose(v.Schedule), r.At)
}

func noShowCheckJob(v *visit.Visit, at time.Time) visit.Job {
	return newJob(TypeNoShowCheck, Payload{VisitID: v.ID, Schedule: v.Schedule}, schedulePurpose(v.Schedule), at)
}

func providerLateJob(v *visit.Visit, at time.Time) visit.Job {
	return newJob(TypeProviderLateCheck, Payload{VisitID: v.ID, Transition: v.Transitions},
		fmt.Sprintf("t%d", v.Transitions), at)
}

func patientWaitingJob(v *visit.Visit) visit.Job {
	return newJob(TypePatientWaitingSMS, Payload{VisitID: v.ID, Transition: v.Transitions},
		fmt.Sprintf("t%d", v.Transitions), time.Time{})
}

func followupJob(v *visit.Visit, at time.Time) visit.Job {
	return newJob(TypeFollowupSend, Payload{VisitID: v.ID}, "followup", at)
}

func cancelSMSJob(v *visit.Visit) visit.Job {
	return newJob(TypeCancelSMS, Payload{VisitID: v.ID}, "cancelled", time.Time{})
}

// dialJob places attempt of the leg's current request at at (now when zero).
func dialJob(v *visit.Visit, attempt int, at time.Time) visit.Job {
	r := v.Interpreter.Request
	return newJob(TypeInterpreterDial, Payload{VisitID: v.ID, Request: r, Attempt: attempt}, attemptPurpose(r, attempt), at)
}

func dialCheckJob(v *visit.Visit, attempt int, at time.Time) visit.Job {
	r := v.Interpreter.Request
	return newJob(TypeInterpreterCheck, Payload{VisitID: v.ID, Request: r, Attempt: attempt}, attemptPurpose(r, attempt), at)
}

func hangupJob(v *visit.Visit) visit.Job {
	r := v.Interpreter.Request
	return newJob(TypeInterpreterHangup, Payload{VisitID: v.ID, Request: r}, requestPurpose(r), time.Time{})
}

func interpreterFailedSMSJob(v *visit.Visit) visit.Job {
	r := v.Interpreter.Request
	return newJob(TypeInterpreterFailedSMS, Payload{VisitID: v.ID, Request: r}, requestPurpose(r), time.Time{})
}

// timersJob is step of the timer chain of v's current schedule, run at at.
func timersJob(v *visit.Visit, step int, at time.Time) visit.Job {
	return newJob(TypeVisitTimers, Payload{VisitID: v.ID, Schedule: v.Schedule, Step: step},
		fmt.Sprintf("t%d:%s", step, schedulePurpose(v.Schedule)), at)
}

// decodePayload reads a task payload; a payload that cannot be read will
// never succeed, so it skips retries. Unknown fields are refused rather than
// ignored: a payload of another shape (an older build's "purpose"/"n") would
// otherwise be read as a different job, and the dashboard shows the refusal.
func decodePayload(t *asynq.Task) (Payload, error) {
	var p Payload
	dec := json.NewDecoder(bytes.NewReader(t.Payload()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || !visit.ValidID(p.VisitID) {
		return p, fmt.Errorf("%s: bad payload: %w", t.Type(), asynq.SkipRetry)
	}
	return p, nil
}

// jobVisit decodes a job's payload and reads its visit as stored now. A
// visit that is gone (purged, never created) is a nil visit and no error:
// the job has nothing left to do.
func (e *Engine) jobVisit(ctx context.Context, t *asynq.Task) (Payload, *visit.Visit, error) {
	p, err := decodePayload(t)
	if err != nil {
		return p, nil, err
	}
	v, err := e.store.Get(ctx, p.VisitID)
	if errors.Is(err, visit.ErrNotFound) {
		return p, nil, nil
	}
	return p, v, err
}

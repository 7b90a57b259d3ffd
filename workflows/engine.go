// Package workflows is what follows from an event: the visit engine (apply a
// fact, derive the state, decide the side effects) and the Asynq task types
// with their handlers.
//
// Every change goes through the store's atomic Update, which commits the
// fact, the timeline entries and the outbox entries (the jobs) together; the
// engine then hands the jobs to Asynq (outbox.go). Jobs carry ids only and
// re-read the visit when they run.
//
// Where to look: tasks.go declares every task type (queue, payload, what its
// handler re-checks) with the typed job constructors; transitions.go is the
// table of what entering each state causes; callbacks.go folds Twilio's
// callbacks into facts. The feature files (rooms, reminders, checks, sms,
// interpreter, dialin, tokens, invites) hold the handlers and their I/O.
package workflows

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

// Store is what the engine needs from persistence (implemented by internal/store).
type Store interface {
	Create(ctx context.Context, v *visit.Visit) (*visit.Visit, bool, error)
	Get(ctx context.Context, id string) (*visit.Visit, error)
	// Update runs fn on the stored visit and commits what it recorded in one
	// atomic step. fn may run more than once (the transaction is retried
	// when another writer got there first), so it must set every result it
	// reports from scratch on each run.
	Update(ctx context.Context, id, token string, fn func(v *visit.Visit) error) (visit.Change, error)
	// UpdateParticipant is Update for a change about participant sid
	// alone: fn sees the visit without its other guests (they never count
	// for the state), so its cost does not grow with them. sid "" is Update.
	UpdateParticipant(ctx context.Context, id, token, sid string, fn func(v *visit.Visit) error) (visit.Change, error)
	Timeline(ctx context.Context, id string) ([]visit.Entry, error)
	// GetWithTimeline reads the visit and its timeline as of one moment.
	GetWithTimeline(ctx context.Context, id string) (*visit.Visit, []visit.Entry, error)
	List(ctx context.Context, q visit.ListQuery) ([]*visit.Visit, string, error)
	VisitForRoom(ctx context.Context, name string) (string, error)
	VisitForCall(ctx context.Context, sid string) (string, error)
	IndexCall(ctx context.Context, sid, id string) error
	ReservePIN(ctx context.Context, pin, id string, hold time.Duration) (bool, error)
	HoldPIN(ctx context.Context, pin, id string, hold time.Duration) (bool, error)
	Reschedule(ctx context.Context, id string, at time.Time) error
	Outbox(ctx context.Context, id string) ([]visit.Job, error)
	AckOutbox(ctx context.Context, id string, jobIDs ...string) error
	// AckOutboxAndClear acknowledges and, when the outbox is then empty,
	// drops the visit's pending mark (ClearPendingIfEmpty) in one step.
	AckOutboxAndClear(ctx context.Context, id string, jobIDs ...string) error
	PendingOutboxes(ctx context.Context, n int64) ([]string, error)
	ScanOutboxes(ctx context.Context) ([]string, error)
	ClearPendingIfEmpty(ctx context.Context, id string) error
	VisitForPIN(ctx context.Context, pin string) (string, error)
	IndexInvite(ctx context.Context, hash, id string, expires time.Time) error
	VisitForInvite(ctx context.Context, hash string) (string, error)
	AddDialInFailure(ctx context.Context, caller string, callerWindow time.Duration, window string, windowLength time.Duration) (int, int, error)
	DialInStanding(ctx context.Context, caller, window, patientPhone string) (int, int, bool, error)
	RememberPatientPhone(ctx context.Context, hash string, hold time.Duration) error
	SetOptOut(ctx context.Context, hash string, out bool, at time.Time) error
	AuditStore
	OptedOut(ctx context.Context, hash string) (bool, error)
	IndexReplies(ctx context.Context, hash, id string, expires time.Time) error
	VisitForReplies(ctx context.Context, hash string) (string, error)
	ScheduledBefore(ctx context.Context, t time.Time, offset, n int64) ([]string, error)
	WatchVisit(ctx context.Context, id string, due time.Time) error
	NextReconcile(ctx context.Context, id string, due time.Time) error
	UnwatchVisit(ctx context.Context, id string) error
	VisitsToReconcile(ctx context.Context, now time.Time, n int64) ([]string, error)
	Delete(ctx context.Context, id string, keep func(v *visit.Visit) bool) (bool, error)
	// ReleasePIN gives back the PIN of a create that did not store its visit.
	ReleasePIN(ctx context.Context, pin, id string) error
}

// Twilio is every Twilio REST call the jobs make (implemented by
// *twilioapi.Client; in sandbox mode and tests it talks to the emulator over
// HTTP). Jobs call it; webhooks never do.
type Twilio interface {
	CreateRoom(ctx context.Context, p twilioapi.CreateRoomParams) (twilioapi.Room, error)
	FetchRoom(ctx context.Context, sidOrName string) (twilioapi.Room, error)
	EndRoom(ctx context.Context, sid string) error
	CreateCall(ctx context.Context, p twilioapi.CreateCallParams) (twilioapi.Call, error)
	UpdateCallTwiml(ctx context.Context, sid, twiml string) error
	HangUp(ctx context.Context, sid string) error
	SendSMS(ctx context.Context, p twilioapi.SendSMSParams) (twilioapi.Message, error)
	AccessToken(identity, room string, notBefore, validUntil time.Time) (string, error)

	// Reads of Twilio's truth (reconcile.go).
	RoomReport(ctx context.Context, sid string) (twilioapi.RoomReport, error)
	CallReport(ctx context.Context, sid string) (twilioapi.CallReport, error)
	MessagesSentTo(ctx context.Context, to string, since time.Time) ([]twilioapi.SentMessage, error)
	CallsPlacedTo(ctx context.Context, to string, since time.Time) ([]twilioapi.PlacedCall, error)
}

// Queue hands tasks to Asynq (implemented by *asynq.Client).
type Queue interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// TaskDeleter removes pending tasks (implemented by *asynq.Inspector).
type TaskDeleter interface {
	DeleteTask(queue, id string) error
}

// Engine applies events to visits.
type Engine struct {
	store   Store
	queue   Queue
	deleter TaskDeleter
	twilio  Twilio
	clock   clock.Clock
	log     *zap.Logger
	cfg     config.Config

	metrics *metrics.Metrics
	acks    *outboxAcks
}

// Deps are the engine's collaborators.
type Deps struct {
	Store   Store
	Queue   Queue
	Deleter TaskDeleter
	Twilio  Twilio
	Clock   clock.Clock
	Log     *zap.Logger
	Config  config.Config
	// Metrics, optional, counts committed state transitions whatever
	// caused them (a callback, the API, a job).
	Metrics *metrics.Metrics
}

// New returns an Engine.
func New(d Deps) *Engine {
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	return &Engine{store: d.Store, queue: d.Queue, deleter: d.Deleter, twilio: d.Twilio, clock: d.Clock, log: d.Log, cfg: d.Config, metrics: d.Metrics,
		acks: newOutboxAcks(d.Store, d.Log)}
}

// AwaitAcks returns once the outbox acknowledgements this engine has handed
// over are sent (acks.go). Call it on shutdown, once no more callbacks or
// jobs will come, before Redis closes. An engine that stops without it
// loses nothing: the sweeper sends again what it did not acknowledge, and
// Asynq refuses.
func (e *Engine) AwaitAcks() { e.acks.wait() }

// Result is what applying one event did.
type Result struct {
	VisitID   string
	Before    visit.State
	After     visit.State
	Duplicate bool
}

// update runs fn on visit id through the store, records the transition and
// its side effects in the same atomic step, then flushes the outbox. Like
// Store.Update's fn, fn may run more than once: a value it hands out of the
// closure must be reset at its start.
func (e *Engine) update(ctx context.Context, id, token string, at time.Time, fn func(v *visit.Visit) error) (Result, *visit.Visit, error) {
	return e.updateFor(ctx, id, token, "", at, fn)
}

// updateFor is update for a change about participant sid alone (a Video
// participant callback; "" for the whole visit): fn sees the visit's
// guests other than sid only as far as the state needs them, which is not
// at all (Store.UpdateParticipant). The visit it returns lacks them too.
func (e *Engine) updateFor(ctx context.Context, id, token, sid string, at time.Time, fn func(v *visit.Visit) error) (Result, *visit.Visit, error) {
	res := Result{VisitID: id}
	change := func(v *visit.Visit) error {
		res.Before = v.State()
		if err := fn(v); err != nil {
			return err
		}
		res.After = v.State()
		if res.After != res.Before {
			e.transition(v, res.After, at)
		}
		return nil
	}
	var ch visit.Change
	var err error
	// A whole-visit change goes through Store.Update itself (not
	// UpdateParticipant with ""), so a Store that wraps Update, as the
	// contention tests do, sees every such change.
	if sid == "" {
		ch, err = e.store.Update(ctx, id, token, change)
	} else {
		ch, err = e.store.UpdateParticipant(ctx, id, token, sid, change)
	}
	if errors.Is(err, visit.ErrDuplicate) {
		return Result{VisitID: id, Duplicate: true}, nil, nil
	}
	if err != nil {
		return res, nil, err
	}
	res.Duplicate = ch.Unchanged
	if res.Before != res.After && e.metrics != nil {
		// Counted after the commit: the transaction may have run fn more
		// than once, but it committed once.
		e.metrics.Transitions.WithLabelValues(string(res.Before), string(res.After)).Inc()
	}
	e.flush(ctx, id, ch.Jobs)
	return res, ch.Visit, nil
}

package workflows

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

// Reconciliation makes Twilio's REST API the truth the visits converge to.
// Callbacks are hints: Twilio does not retry a 5xx unless the URL asks it
// to, and some callbacks never arrive. Every twilio.reconcile_interval the
// scheduler's task reads back the open visits whose callbacks went quiet:
// the room, its participants, the interpreter's call. What Twilio reports
// goes through the same folds as the callbacks (foldVideo, foldVoice) in
// one atomic update, with timeline source twilio.rest; facts are set once,
// so a late callback and a reconciled fact agree whichever comes first.
//
// Which visits: those in the store's reconcile index, which a visit enters
// just before its room is created (ensureRoom) and leaves once it is
// finished with no live phone leg. Each run reads at most
// twilio.reconcile_batch of them, longest overdue first, and moves each one
// interval on, so a backlog is worked off over the following runs. Two
// schedulers are harmless: the task is unique per run, and folding the same
// report twice changes nothing.

// ReconcileReport is what one run did.
type ReconcileReport struct {
	Visits int // visits looked at
	Read   int // of which Twilio's REST API was asked
	Failed int // of which the read failed (retried next run)
	Facts  int // facts learnt that no callback had delivered
}

// reconcileInterval is twilio.reconcile_interval (0: off).
func (e *Engine) reconcileInterval() time.Duration { return e.cfg.Twilio.ReconcileInterval }

// watchRoom puts the visit in the reconcile index before its room is
// created, so even a crash right after Twilio created it leaves the room
// where reconciliation looks.
func (e *Engine) watchRoom(ctx context.Context, id string) error {
	if e.reconcileInterval() <= 0 {
		return nil
	}
	return e.store.WatchVisit(ctx, id, e.clock.Now().Add(e.reconcileInterval()))
}

// settledWithTwilio reports whether there is nothing more to learn from
// Twilio about v: the visit is finished, has no live phone leg, and its
// room (if it had one) was read once after it ended. That last read matters:
// a room-ended callback that arrives while a participant-connected was lost
// makes the visit look finished (a no-show) when Twilio knows better.
func settledWithTwilio(v *visit.Visit) bool {
	return v.Finished() && (v.Interpreter == nil || !v.Interpreter.Live()) &&
		(v.Room.SID == "" || v.IsDone(finalReadKey(v.Room.SID)))
}

// finalReadKey marks, in Visit.Done, that room sid was read from Twilio
// after it ended: everyone who was ever in it is known.
func finalReadKey(sid string) string { return "twilio.rest:ended-room-read:" + sid }

// Reconcile runs one reconciliation pass (the TypeReconcile task).
func (e *Engine) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var rep ReconcileReport
	interval := e.reconcileInterval()
	if interval <= 0 || e.twilio == nil {
		return rep, nil
	}
	now := e.clock.Now()
	batch := e.cfg.Twilio.ReconcileBatch
	if batch <= 0 {
		batch = 200
	}
	ids, err := e.store.VisitsToReconcile(ctx, now, batch)
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		rep.Visits++
		read, facts, err := e.reconcileWatched(ctx, id, now, interval)
		switch {
		case err != nil:
			rep.Failed++
			e.countReconcile("failed")
			e.log.Warn("reconcile: reading Twilio failed; retried next run", zap.String("visit", id),
				zap.Int("code", twilioapi.Code(err)), zap.Error(err))
		case read:
			rep.Read++
			e.countReconcile("read")
		default:
			e.countReconcile("recent")
		}
		rep.Facts += facts
	}
	if rep.Facts > 0 || rep.Failed > 0 {
		e.log.Info("reconcile: run", zap.Int("visits", rep.Visits), zap.Int("read", rep.Read),
			zap.Int("failed", rep.Failed), zap.Int("facts", rep.Facts))
	}
	return rep, nil
}

// reconcileWatched looks at one visit of the index: leaves it out when it
// is settled, skips it when a callback arrived within the interval, else
// reads Twilio. It then moves the visit's next check one interval on.
func (e *Engine) reconcileWatched(ctx context.Context, id string, now time.Time, interval time.Duration) (read bool, facts int, err error) {
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, visit.ErrNotFound) {
		return false, 0, e.store.UnwatchVisit(ctx, id)
	}
	if err != nil {
		return false, 0, err
	}
	if settledWithTwilio(v) {
		return false, 0, e.store.UnwatchVisit(ctx, id)
	}
	next := now.Add(interval)
	if !v.QuietSince(now.Add(-interval)) {
		// Callbacks are flowing: look again one interval after the last.
		return false, 0, e.store.NextReconcile(ctx, id, v.HeardAt.Add(interval))
	}
	v, facts, err = e.reconcileVisit(ctx, v)
	if err != nil {
		if nerr := e.store.NextReconcile(ctx, id, next); nerr != nil {
			e.log.Warn("reconcile: reschedule", zap.String("visit", id), zap.Error(nerr))
		}
		e.noteReconcileFailing(ctx, id, err)
		return true, facts, err
	}
	if v != nil && settledWithTwilio(v) {
		return true, facts, e.store.UnwatchVisit(ctx, id)
	}
	return true, facts, e.store.NextReconcile(ctx, id, next)
}

// reconcileVisit reads what Twilio knows of v's room and live phone leg and
// folds it into the visit in one atomic update. It returns the visit as
// committed (v itself when nothing was read) and how many facts were new.
func (e *Engine) reconcileVisit(ctx context.Context, v *visit.Visit) (*visit.Visit, int, error) {
	var room *twilioapi.RoomReport
	if v.Room.SID != "" {
		r, err := e.twilio.RoomReport(ctx, v.Room.SID)
		if err != nil {
			return v, 0, err
		}
		room = &r
	}
	var call *twilioapi.CallReport
	if leg := v.Interpreter; leg != nil && leg.Live() && leg.CallSID != "" {
		c, err := e.twilio.CallReport(ctx, leg.CallSID)
		if err != nil && !twilioapi.Permanent(err) {
			return v, 0, err
		}
		if err == nil {
			call = &c
		}
	}
	if room == nil && call == nil {
		return v, 0, nil
	}
	now := e.clock.Now()
	facts := 0
	_, nv, err := e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		facts = 0
		if _, failing := v.Extra[reconcileFailingKey]; failing {
			delete(v.Extra, reconcileFailingKey)
			v.Log(visit.Entry{At: now, Source: visit.SourceREST, Type: "reconcile-recovered",
				Summary: "Twilio's REST API answered again; the visit is read back as usual"})
		}
		if room != nil && room.SID == v.Room.SID {
			facts += e.foldRoomReport(v, *room, now)
			if room.Ended() {
				v.MarkDone(finalReadKey(room.SID), now)
			}
		}
		if call != nil && v.Interpreter != nil && v.Interpreter.CallSID == call.SID {
			facts += e.foldCallReport(v, *call, now)
		}
		return nil
	})
	if err != nil {
		return v, 0, e.ignoreGone("reconcile", v.ID, err)
	}
	if e.metrics != nil && facts > 0 {
		e.metrics.ReconciledFacts.Add(float64(facts))
	}
	if nv == nil {
		nv = v
	}
	return nv, facts, nil
}

// foldRoomReport folds a room report into v as the callbacks Twilio would
// have sent: each participant's connect and disconnect, then the room's
// end. It returns how many were new (each adds a timeline entry).
func (e *Engine) foldRoomReport(v *visit.Visit, r twilioapi.RoomReport, now time.Time) int {
	before := len(v.PendingTimeline())
	fold := func(ev VideoEvent, at *time.Time) {
		t := now
		if at != nil {
			t = *at
		}
		if ev.Event != EventParticipantConnected {
			t = endOfSecond(t)
		}
		ev.RoomSID, ev.RoomName = r.SID, r.Name
		_ = e.foldVideo(v, ev, t, visit.SourceREST) // the room is v's: its SID matched
	}
	for _, p := range r.Participants {
		if p.StartedAt != nil {
			fold(VideoEvent{Event: EventParticipantConnected, ParticipantSID: p.SID, ParticipantIdentity: p.Identity}, p.StartedAt)
		}
		if p.Status == "disconnected" {
			fold(VideoEvent{Event: EventParticipantDisconnected, ParticipantSID: p.SID, ParticipantIdentity: p.Identity,
				ParticipantDuration: p.Duration}, p.EndedAt)
		}
	}
	if r.Ended() {
		fold(VideoEvent{Event: EventRoomEnded}, r.EndedAt)
	}
	return len(v.PendingTimeline()) - before
}

// foldCallReport folds the interpreter call's status as a status callback
// would have; a call Twilio reports ended ends (or retries) the leg.
func (e *Engine) foldCallReport(v *visit.Visit, c twilioapi.CallReport, now time.Time) int {
	before := len(v.PendingTimeline())
	at := now
	if c.EndedAt != nil {
		at = endOfSecond(*c.EndedAt)
	}
	e.foldVoice(v, VoiceEvent{VisitHint: v.ID, CallSID: c.SID, CallStatus: c.Status, AnsweredBy: c.AnsweredBy,
		CallDuration: c.Duration}, at, visit.SourceREST)
	return len(v.PendingTimeline()) - before
}

// reconcileFailingKey marks, in Visit.Extra, a visit whose reads from
// Twilio are failing: the timeline says so once, not at every run.
const reconcileFailingKey = "reconcile:failing"

// noteReconcileFailing records, once per spell of failures, that the visit
// could not be read back from Twilio: the board lists it under failures, as
// the visit may lag behind what Twilio knows.
func (e *Engine) noteReconcileFailing(ctx context.Context, id string, cause error) {
	now := e.clock.Now()
	_, _, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		if _, failing := v.Extra[reconcileFailingKey]; failing {
			return nil
		}
		if v.Extra == nil {
			v.Extra = map[string]string{}
		}
		v.Extra[reconcileFailingKey] = now.UTC().Format(time.RFC3339)
		// The type is what the board lists as a failure.
		v.Log(visit.Entry{At: now, Source: visit.SourceREST, Type: "reconcile-failed",
			Summary: fmt.Sprintf("could not read the visit back from Twilio (%s); tried again every %s", twilioFailureText(cause), e.reconcileInterval())})
		return nil
	})
	if err != nil {
		e.log.Warn("reconcile: noting the failure", zap.String("visit", id), zap.Error(err))
	}
}

// endOfSecond places an end Twilio's REST API reports at the last
// millisecond of its second. The REST API gives whole seconds while the
// callbacks carry milliseconds, so a disconnect reported as 10:35:43 may
// belong to a connection the callback placed at 10:35:43.351; taken as is,
// the connection would end before it began and the visit would derive as if
// nobody had been together.
func endOfSecond(t time.Time) time.Time {
	if t.Nanosecond() != 0 {
		return t
	}
	return t.Add(time.Second - time.Millisecond)
}

func (e *Engine) countReconcile(outcome string) {
	if e.metrics != nil {
		e.metrics.Reconciles.WithLabelValues(outcome).Inc()
	}
}

func (e *Engine) handleReconcile(ctx context.Context, _ *asynq.Task) error {
	_, err := e.Reconcile(ctx)
	return err
}

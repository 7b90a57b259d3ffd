package workflows

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

// Room task types. Issue 3 creates rooms ahead of time; these are what the
// phone legs, tokens and POST /end need until that job exists, and the one
// place (ensureRoom) to merge with it.
const (
	// TypeRoomEnsure creates the visit's room if it has none yet (dial-in
	// callers waiting for it).
	TypeRoomEnsure = "room:ensure"
	// TypeRoomEnd ends the visit's room (POST /v1/visits/{id}/end, cancel).
	TypeRoomEnd = "room:end"
)

// maxRoomTimeout is Twilio's upper bound for Empty/UnusedRoomTimeout.
const maxRoomTimeout = 60 * time.Minute

// callbackURL is an absolute URL under http.public_base_url for Twilio to
// call, with the visit id (and any further key/value pairs) as its query.
// The query is part of what Twilio signs.
func (e *Engine) callbackURL(path, visitID string, kv ...string) string {
	q := url.Values{}
	if visitID != "" {
		q.Set("visit", visitID)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u := strings.TrimRight(e.cfg.HTTP.PublicBaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// roomTimeouts are the Empty/UnusedRoomTimeout a room is created with: the
// configured ones, raised to cover a whole interpreter dial sequence (every
// attempt ringing out plus the backoffs between them, plus the IVR), so
// Twilio does not close a room nobody has joined yet while the interpreter
// is still being dialled. Twilio caps both at 60 minutes.
func (e *Engine) roomTimeouts() (empty, unused time.Duration) {
	dialing := 2 * time.Minute // IVR navigation and bridging
	for n := 1; n <= e.cfg.Interpreter.MaxAttempts; n++ {
		dialing += e.cfg.Interpreter.RingTimeout + e.retryBackoff(n)
	}
	empty = min(max(e.cfg.Visits.EmptyRoomTimeout, dialing), maxRoomTimeout)
	unused = min(max(e.cfg.Visits.UnusedRoomTimeout, dialing), maxRoomTimeout)
	return empty, unused
}

// ensureRoom makes sure the visit's Group Room exists and its SID is
// recorded, creating it through the REST API with our status callback when
// v has no SID yet. Creating is idempotent (twilioapi returns the in-progress
// room on 53113), so concurrent callers are harmless. It updates v.Room.SID.
func (e *Engine) ensureRoom(ctx context.Context, v *visit.Visit) (string, error) {
	if v.Room.SID != "" {
		return v.Room.SID, nil
	}
	empty, unused := e.roomTimeouts()
	room, err := e.twilio.CreateRoom(ctx, twilioapi.CreateRoomParams{
		UniqueName:       v.Room.Name,
		StatusCallback:   e.callbackURL("/twilio/video/status", v.ID),
		EmptyRoomTimeout: empty, UnusedRoomTimeout: unused,
	})
	if err != nil {
		return "", fmt.Errorf("workflows: ensure room %s: %w", v.ID, err)
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		if v.Room.SID == "" {
			v.Room.SID = room.SID
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "room-opened", Summary: "room opened"})
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("workflows: ensure room %s: record: %w", v.ID, err)
	}
	v.Room.SID = room.SID
	return room.SID, nil
}

func (e *Engine) handleRoomEnsure(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	v, err := e.store.Get(ctx, p.VisitID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !v.State().Open() || v.Finished() {
		return nil
	}
	_, err = e.ensureRoom(ctx, v)
	return jobError(err)
}

// EndVisit ends the visit now: it records the room-ended fact (the state
// becomes completed or no_show), hangs up the interpreter leg and ends the
// room through a job. Ending an ended visit changes nothing; a cancelled
// visit cannot be ended (visit.ErrInvalidChange).
func (e *Engine) EndVisit(ctx context.Context, id string) (*visit.Visit, error) {
	now := e.clock.Now()
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		if v.State() == visit.Cancelled {
			return fmt.Errorf("%w: cannot end a cancelled visit", visit.ErrInvalidChange)
		}
		if v.RoomEnded(now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "ended", Summary: "visit ended"})
			v.Enqueue(job(TypeRoomEnd, QueueCritical, Payload{VisitID: v.ID, Purpose: "end"}, time.Time{}))
		}
		e.stopLegs(v, now, "visit ended")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if v == nil { // nothing changed: answer the stored visit
		return e.store.Get(ctx, id)
	}
	return v, nil
}

func (e *Engine) handleRoomEnd(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	v, err := e.store.Get(ctx, p.VisitID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if v.Facts.RoomEndedAt == nil && v.State() != visit.Cancelled {
		return nil
	}
	sid := v.Room.SID
	if sid == "" {
		room, err := e.twilio.FetchRoom(ctx, v.Room.Name)
		if twilioapi.Code(err) == twilioapi.CodeResourceMissing {
			return nil // never created, or already gone
		}
		if err != nil {
			return jobError(err)
		}
		if room.Status != "in-progress" {
			return nil
		}
		sid = room.SID
	}
	if err := e.twilio.EndRoom(ctx, sid); err != nil {
		return jobError(err)
	}
	e.log.Info("room ended", zap.String("visit", v.ID))
	return nil
}

// jobError tells Asynq whether to retry: permanent Twilio errors skip
// retries (twilioapi.Error unwraps to asynq.SkipRetry), the rest retry.
func jobError(err error) error {
	if err == nil {
		return nil
	}
	if twilioapi.Permanent(err) && !errors.Is(err, asynq.SkipRetry) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

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

	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

// Room task types.
const (
	// TypeRoomCreate creates the visit's Group Room (with our status
	// callback) visits.room_lead before scheduled_at, so nobody ever joins a
	// room Twilio would not report on.
	TypeRoomCreate = "room:create"
	// TypeRoomEnd ends the room of a visit that was completed through the API
	// or cancelled. A room Twilio ended by itself needs nothing.
	TypeRoomEnd = "room:end"
)

// doneRoomEndedByTwilio marks a visit whose room-ended callback arrived, so
// room:end knows Twilio needs no REST call.
const doneRoomEndedByTwilio = "video:room-ended"

// enableRooms registers the room jobs and the hooks that schedule them.
func (e *Engine) enableRooms() {
	if e.twilio == nil { // an engine without Twilio (some tests) makes no rooms
		return
	}
	e.Handle(TypeRoomCreate, e.handleRoomCreate)
	e.Handle(TypeRoomEnd, e.handleRoomEnd)
	e.OnSchedule(e.scheduleRoom)
	e.OnTransition(e.endRoomWhenDone)
}

// scheduleRoom enqueues room:create at scheduled_at - room_lead (now when
// that is past). The schedule number is the purpose, so a reschedule's job
// never collides with the old one, and the old one does nothing.
func (e *Engine) scheduleRoom(v *visit.Visit, now time.Time) {
	if v.Schedule > 0 { // a reschedule: the previous schedule's job is void
		old := job(TypeRoomCreate, QueueCritical, Payload{VisitID: v.ID, Purpose: fmt.Sprintf("s%d", v.Schedule-1)}, time.Time{})
		old.Delete = true
		v.Enqueue(old)
	}
	if v.Room.SID != "" {
		return
	}
	at := v.ScheduledAt.Add(-e.cfg.Visits.RoomLead)
	if !at.After(now) {
		at = time.Time{}
	}
	v.Enqueue(job(TypeRoomCreate, QueueCritical,
		Payload{VisitID: v.ID, Purpose: fmt.Sprintf("s%d", v.Schedule), N: v.Schedule}, at))
}

// endRoomWhenDone enqueues room:end when a visit becomes completed or
// cancelled. The room SID is part of the purpose: a room recorded after the
// visit ended gets its own room:end (see recordRoom).
func (e *Engine) endRoomWhenDone(v *visit.Visit, _, to visit.State, _ time.Time) {
	if to != visit.Completed && to != visit.Cancelled {
		return
	}
	v.Enqueue(roomEndJob(v))
}

func roomEndJob(v *visit.Visit) visit.Job {
	purpose := v.Room.SID
	if purpose == "" {
		purpose = "no-room"
	}
	return job(TypeRoomEnd, QueueCritical, Payload{VisitID: v.ID, Purpose: purpose}, time.Time{})
}

// roomClosed reports whether a visit may no longer get a room.
func roomClosed(v *visit.Visit) bool {
	switch v.State() {
	case visit.Completed, visit.Cancelled:
		return true
	}
	return false
}

// ensureRoom makes sure visit id has its Group Room and returns the visit
// with room.sid set. It creates the room now when the visit has none yet
// (the token endpoint calls it before issuing an access token, so nobody
// joins a room without our status callback). Safe to call concurrently and
// repeatedly: Twilio's "Room exists" (53113) answers with the in-progress
// room of that name, and the first SID recorded wins. A completed or
// cancelled visit gets no room (visit.ErrInvalidChange).
func (e *Engine) ensureRoom(ctx context.Context, id string) (*visit.Visit, error) {
	v, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if v.Room.SID != "" {
		return v, nil
	}
	if roomClosed(v) {
		return nil, fmt.Errorf("%w: a %s visit gets no room", visit.ErrInvalidChange, v.State())
	}
	room, err := e.twilio.CreateRoom(ctx, twilioapi.CreateRoomParams{
		UniqueName:        v.Room.Name,
		StatusCallback:    e.roomCallbackURL(v.ID),
		EmptyRoomTimeout:  e.cfg.Visits.EmptyRoomTimeout,
		UnusedRoomTimeout: e.unusedRoomTimeout(v, e.clock.Now()),
	})
	if err != nil {
		return nil, fmt.Errorf("workflows: create room for %s: %w", id, err)
	}
	if room.SID == "" {
		return nil, fmt.Errorf("workflows: create room for %s: Twilio answered no room SID", id)
	}
	return e.recordRoom(ctx, id, room.SID)
}

// recordRoom stores the room SID unless one is there already (the
// room-created callback, or a concurrent create, may have won). A room that
// came into being after the visit finished is ended right away.
func (e *Engine) recordRoom(ctx context.Context, id, sid string) (*visit.Visit, error) {
	now := e.clock.Now()
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		if v.Room.SID == "" {
			v.Room.SID = sid
		}
		if v.MarkDone("room:created", now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "room-created",
				Summary: "room " + v.Room.SID + " created with our status callback"})
		}
		if roomClosed(v) {
			v.Enqueue(roomEndJob(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("workflows: record room for %s: %w", id, err)
	}
	if v == nil { // a duplicate update: read what is stored
		return e.store.Get(ctx, id)
	}
	return v, nil
}

// roomCallbackURL is where Twilio reports on the visit's room; the visit id
// in the query finds the visit without an index lookup.
func (e *Engine) roomCallbackURL(id string) string {
	return strings.TrimRight(e.cfg.HTTP.PublicBaseURL, "/") + "/twilio/video/status?visit=" + url.QueryEscape(id)
}

// unusedRoomTimeout keeps a room created room_lead early open until the
// patient can be called a no-show: Twilio counts the unused timeout from
// creation, and a room that closes unused makes the visit a no-show at once
// (contract §5: the room ended without provider and patient together). It
// is the later of visits.unused_room_timeout and visits.no_show_after, past
// scheduled_at; Twilio caps it at 60 minutes.
func (e *Engine) unusedRoomTimeout(v *visit.Visit, now time.Time) time.Duration {
	d := max(e.cfg.Visits.UnusedRoomTimeout, e.cfg.Visits.NoShowAfter)
	if until := v.ScheduledAt.Sub(now); until > 0 {
		d += until
	}
	return min(d, time.Hour)
}

// handleRoomCreate runs room:create: it creates the room unless the visit
// already has one, was rescheduled since (a newer job owns it), or ended.
func (e *Engine) handleRoomCreate(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	v, err := e.store.Get(ctx, p.VisitID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if v.Room.SID != "" || v.Schedule != p.N || roomClosed(v) {
		return nil
	}
	_, err = e.ensureRoom(ctx, p.VisitID)
	switch {
	case err == nil, errors.Is(err, ErrNotFound), errors.Is(err, visit.ErrInvalidChange):
		return nil
	case twilioapi.Permanent(err):
		e.log.Error("room:create failed permanently", zap.String("visit", p.VisitID), zap.Error(err))
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// handleRoomEnd runs room:end: it ends the visit's room through the REST API
// unless there is none or Twilio already reported it ended.
func (e *Engine) handleRoomEnd(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload(t)
	if err != nil {
		return err
	}
	v, err := e.store.Get(ctx, p.VisitID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if v.Room.SID == "" || v.IsDone(doneRoomEndedByTwilio) || v.IsDone("room:ended") {
		return nil
	}
	if err := e.twilio.EndRoom(ctx, v.Room.SID); err != nil {
		if twilioapi.Permanent(err) {
			e.log.Error("room:end failed permanently", zap.String("visit", p.VisitID), zap.Error(err))
			return fmt.Errorf("workflows: end room for %s: %w: %w", p.VisitID, err, asynq.SkipRetry)
		}
		return fmt.Errorf("workflows: end room for %s: %w", p.VisitID, err)
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		if v.MarkDone("room:ended", now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "room-end-requested",
				Summary: "asked Twilio to end room " + v.Room.SID})
		}
		return nil
	})
	return err
}

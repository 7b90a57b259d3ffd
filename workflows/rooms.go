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

// maxRoomTimeout is Twilio's upper bound for Empty/UnusedRoomTimeout.
const maxRoomTimeout = 60 * time.Minute

// doneRoomEndedByTwilio marks a visit whose room-ended callback arrived, so
// room:end knows Twilio needs no REST call.
const doneRoomEndedByTwilio = "video:room-ended"

// doneRoomEndRequested marks a visit whose room we asked Twilio to end.
const doneRoomEndRequested = "room:ended"

// doneRoomClosedUnused + a room SID marks a room Twilio closed before anyone
// joined: its callbacks no longer concern the visit.
const doneRoomClosedUnused = "video:room-closed-unused:"

// scheduleRoom plans room:create at scheduled_at - room_lead in the
// schedule's timer chain (timers.go), or records it now when that is past.
// The schedule number is the job's purpose, so a reschedule's job never
// collides with the old one, which is deleted in case the chain had
// already enqueued it (and would do nothing).
func (e *Engine) scheduleRoom(v *visit.Visit, now time.Time) {
	if v.Schedule > 0 {
		v.Enqueue(roomCreateDeletion(v, v.Schedule-1))
	}
	if v.Room.SID != "" {
		return
	}
	if at := v.ScheduledAt.Add(-e.cfg.Visits.RoomLead); at.After(now) {
		addTimer(v, timerRoom, at)
		return
	}
	v.Enqueue(roomCreateJob(v, time.Time{}))
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
	if err := v.RefuseIfFinished("open a room for"); err != nil {
		return nil, err
	}
	if err := e.watchRoom(ctx, id); err != nil {
		return nil, fmt.Errorf("workflows: create room for %s: %w", id, err)
	}
	empty, unused := e.roomTimeouts(v, e.clock.Now())
	params := twilioapi.CreateRoomParams{
		UniqueName:        v.Room.Name,
		StatusCallback:    e.callbackURL("/twilio/video/status", v.ID),
		EmptyRoomTimeout:  empty,
		UnusedRoomTimeout: unused,
	}
	room, err := e.twilio.CreateRoom(ctx, params)
	if err == nil && room.StatusCallback == "" && room.SID != "" {
		// An in-progress room of that name without our status callback:
		// a client that connected by name made it ad hoc, and Twilio
		// reports nothing about such a room. Replace it with ours.
		e.log.Warn("rooms: replacing an ad-hoc room", zap.String("visit", id), zap.String("room", room.SID))
		if err = e.twilio.EndRoom(ctx, room.SID); err == nil {
			room, err = e.twilio.CreateRoom(ctx, params)
		}
	}
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
		if v.Finished() {
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

// callbackURL is an absolute URL under http.public_base_url for Twilio to
// call, with the visit id (and any further key/value pairs) as its query.
// The query is part of what Twilio signs, and the visit id finds the visit
// without an index lookup.
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

// VoiceOverrides are the connection overrides (twilio-protocol §4) on every
// Voice webhook URL visitflow hands Twilio: without them Twilio does not
// retry a 5xx, so a callback answered 503 during a Redis blip would be
// lost. Up to two retries on a failed connect, a read timeout or a 5xx,
// within Twilio's 15 s budget for call-related requests. The fragment is
// not signed and never reaches us.
const VoiceOverrides = "#ct=1000&rt=4000&tt=14000&rc=2&rp=ct,rt,5xx"

// voiceURL is callbackURL for a Voice webhook: with VoiceOverrides.
func (e *Engine) voiceURL(path, visitID string, kv ...string) string {
	return e.callbackURL(path, visitID, kv...) + VoiceOverrides
}

// roomTimeouts are the Empty/UnusedRoomTimeout a room is created with.
//
// Unused: Twilio counts it from creation, and a room that closes unused makes
// the visit a no-show at once (contract §5: the room ended without provider
// and patient together). A room created room_lead early must therefore stay
// open until the patient can be called a no-show: the later of
// visits.unused_room_timeout and visits.no_show_after, past scheduled_at.
//
// Both are also raised to cover a whole interpreter dial sequence (every
// attempt ringing out plus the backoffs between them, plus the IVR), so
// Twilio does not close a room nobody has joined yet while the interpreter
// is still being dialled. Twilio caps both at 60 minutes.
func (e *Engine) roomTimeouts(v *visit.Visit, now time.Time) (empty, unused time.Duration) {
	dialing := 2 * time.Minute // IVR navigation and bridging
	for n := 1; n <= e.cfg.Interpreter.MaxAttempts; n++ {
		dialing += e.cfg.Interpreter.RingTimeout + e.retryBackoff(n)
	}
	unused = max(e.cfg.Visits.UnusedRoomTimeout, e.cfg.Visits.NoShowAfter)
	if until := v.ScheduledAt.Sub(now); until > 0 {
		unused += until
	}
	empty = min(max(e.cfg.Visits.EmptyRoomTimeout, dialing), maxRoomTimeout)
	unused = min(max(unused, dialing), maxRoomTimeout)
	return empty, unused
}

// roomEndedEarly reports whether a room-ended callback is Twilio closing
// the visit's room before anyone joined and ahead of the no-show deadline
// (its unused timeout, at most 60 minutes): not the visit's end (contract
// §5). Runs inside ApplyVideo's update.
func (e *Engine) roomEndedEarly(v *visit.Visit, ev VideoEvent, at time.Time) bool {
	return ev.Event == EventRoomEnded && ev.RoomSID != "" && ev.RoomSID == v.Room.SID &&
		len(v.Facts.Participants) == 0 && v.Facts.RoomEndedAt == nil && !v.Finished() &&
		at.Before(v.ScheduledAt.Add(e.cfg.Visits.NoShowAfter))
}

// roomGone forgets a room Twilio closed early and has a new one created
// when the room window opens (now, when it is open). Runs inside an update.
func (e *Engine) roomGone(v *visit.Visit, at time.Time) {
	ended := v.Room.SID
	v.MarkDone(doneRoomClosedUnused+ended, at)
	v.Room.SID = ""
	delete(v.Done, "room:created")
	delete(v.Done, "video:room-created")
	v.Log(visit.Entry{At: at, Source: visit.SourceVideo, Type: "room-closed-unused",
		Summary: "room " + ended + " closed unused before the visit; the visit stays scheduled and gets a new room"})
	createAt := e.roomOpens(v)
	if !createAt.After(e.clock.Now()) {
		createAt = time.Time{}
	}
	v.Enqueue(roomRecreateJob(v, ended, createAt))
}

// handleRoomCreate runs room:create: it creates the room unless the visit
// already has one, was rescheduled since (a newer job owns it), or ended.
func (e *Engine) handleRoomCreate(ctx context.Context, t *asynq.Task) error {
	p, v, err := e.jobVisit(ctx, t)
	if v == nil {
		return err
	}
	if v.Room.SID != "" || v.Schedule != p.Schedule || v.Finished() {
		return nil
	}
	_, err = e.ensureRoom(ctx, p.VisitID)
	switch {
	case err == nil, errors.Is(err, visit.ErrNotFound), errors.Is(err, visit.ErrInvalidChange):
		return nil
	case twilioapi.Permanent(err):
		e.log.Error("room:create failed permanently", zap.String("visit", p.VisitID), zap.Error(err))
	}
	return err
}

// handleRoomEnd runs room:end: it ends the visit's room through the REST API
// unless there is none or Twilio already reported it ended.
func (e *Engine) handleRoomEnd(ctx context.Context, t *asynq.Task) error {
	p, v, err := e.jobVisit(ctx, t)
	if v == nil {
		return err
	}
	if v.Room.SID == "" || v.IsDone(doneRoomEndedByTwilio) || v.IsDone(doneRoomEndRequested) {
		return nil
	}
	if err := e.twilio.EndRoom(ctx, v.Room.SID); err != nil {
		if twilioapi.Permanent(err) {
			e.log.Error("room:end failed permanently", zap.String("visit", p.VisitID), zap.Error(err))
		}
		return fmt.Errorf("workflows: end room for %s: %w", p.VisitID, err)
	}
	now := e.clock.Now()
	_, _, err = e.update(ctx, p.VisitID, "", now, func(v *visit.Visit) error {
		if v.MarkDone(doneRoomEndRequested, now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "room-end-requested",
				Summary: "asked Twilio to end room " + v.Room.SID})
		}
		return nil
	})
	return err
}

// handleRoomEnsure runs room:ensure: the room, now, for a visit still open.
func (e *Engine) handleRoomEnsure(ctx context.Context, t *asynq.Task) error {
	_, v, err := e.jobVisit(ctx, t)
	if v == nil {
		return err
	}
	if v.Finished() {
		return nil
	}
	_, err = e.ensureRoom(ctx, v.ID)
	if errors.Is(err, visit.ErrInvalidChange) {
		return nil
	}
	return err
}

// EndVisit ends the visit now: it records the room-ended fact (the state
// becomes completed or no_show), hangs up the interpreter leg and ends the
// room through a job. Ending an ended visit changes nothing; a cancelled
// visit cannot be ended (visit.ErrInvalidChange).
func (e *Engine) EndVisit(ctx context.Context, id string) (*visit.Visit, error) {
	now := e.clock.Now()
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		if v.State() == visit.Cancelled {
			return v.Refuse("end")
		}
		if v.RoomEnded(now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "ended", Summary: "visit ended"})
			v.Enqueue(roomEndOnRequestJob(v))
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

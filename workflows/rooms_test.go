package workflows_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// newRoomEnv is an engine on real Redis whose Twilio client talks HTTP to
// the emulator; *roomUpdates counts REST requests that end a room. No
// workers: the tests run the room jobs themselves.
func newRoomEnv(t *testing.T) (e *testenv.Env, roomUpdates *atomic.Int32) {
	t.Helper()
	roomUpdates = new(atomic.Int32)
	e = testenv.New(t, testenv.WrapSandbox(func(emu http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/Rooms/") {
				roomUpdates.Add(1)
			}
			emu.ServeHTTP(w, r)
		})
	}))
	return e, roomUpdates
}

// createIn creates visit id scheduled in from now, through the engine.
func createIn(t *testing.T, e *testenv.Env, id string, in time.Duration) *visit.Visit {
	t.Helper()
	return e.CreateEngineVisit(workflows.CreateInput{ID: id,
		ScheduledAt: time.Now().Add(in).UTC().Format(time.RFC3339),
		Provider:    workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}})
}

func TestEnsureRoomConcurrentAndRepeatedMakesOneRoom(t *testing.T) {
	f, _ := newRoomEnv(t)
	v := createIn(t, f, "V-dup", 2*time.Hour)
	ctx := context.Background()

	var wg sync.WaitGroup
	sids := make([]string, 8)
	errs := make([]error, 8)
	for i := range sids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := workflows.EnsureRoom(f.Engine, ctx, v.ID)
			errs[i] = err
			if got != nil {
				sids[i] = got.Room.SID
			}
		}()
	}
	wg.Wait()
	// The scheduled job firing as well (twice: a duplicate or a retry).
	for range 2 {
		if err := testenv.Process(f.Engine, workflows.TypeRoomCreate, workflows.Payload{VisitID: v.ID, Schedule: 0}); err != nil {
			t.Fatalf("room:create = %v; want nil", err)
		}
	}

	rooms := f.Sandbox.RoomsNamed(t, v.Room.Name)
	if len(rooms) != 1 {
		t.Fatalf("emulator has %d rooms named %s; want 1", len(rooms), v.Room.Name)
	}
	for i := range sids {
		if errs[i] != nil || sids[i] != rooms[0].SID {
			t.Fatalf("ensureRoom #%d = %q, %v; want %v, nil", i, sids[i], errs[i], rooms[0].SID)
		}
	}
	_, tl, err := f.Engine.Visit(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range tl {
		if e.Source == visit.SourceWorker && e.Type == "room-created" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("timeline has %d worker room-created entries; want 1: %+v", n, tl)
	}
	if got := rooms[0].StatusCallback; got != f.Config.HTTP.PublicBaseURL+"/twilio/video/status?visit=V-dup" {
		t.Fatalf("status_callback = %v; want our /twilio/video/status?visit=V-dup", got)
	}
}

func TestRoomCreateIsScheduledRoomLeadBeforeTheVisit(t *testing.T) {
	f, _ := newRoomEnv(t)
	// Lead already past: room:create is pending at once.
	createIn(t, f, "V-soon", 10*time.Minute)
	info, err := f.Inspector.GetTaskInfo(f.QueueName(workflows.QueueCritical), "V-soon:"+workflows.TypeRoomCreate+":s0")
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("V-soon: room:create = %v, %v; want pending now", info, err)
	}
	// Later: the visit's timer chain holds it for scheduled_at - room_lead
	// (timers.go) and hands it to Asynq TimerLead ahead, scheduled at that
	// moment; a worker whose clock reads one second earlier than the hand
	// over enqueues nothing for the room.
	v := createIn(t, f, "V-later", 2*time.Hour)
	opens := v.ScheduledAt.Add(-f.Config.Visits.RoomLead)
	var room []workflows.Timer
	for _, tm := range workflows.UpcomingTimers(v) {
		if tm.Type == workflows.TypeRoomCreate {
			room = append(room, tm)
		}
	}
	if len(room) != 1 || !room[0].At.Equal(opens) {
		t.Fatalf("V-later's room timer = %+v; want one at %v (scheduled_at - room_lead)", room, opens)
	}
	roomTask := func() error {
		_, err := f.Inspector.GetTaskInfo(f.QueueName(workflows.QueueCritical), "V-later:"+workflows.TypeRoomCreate+":s0")
		return err
	}
	runChain := func(now time.Time) {
		t.Helper()
		stored, err := f.Store.Get(context.Background(), "V-later")
		if err != nil {
			t.Fatal(err)
		}
		step := strings.TrimPrefix(workflows.TimersTaskID(stored), "V-later:visit:timers:t")
		n, _, _ := strings.Cut(step, ":")
		s, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("timer task %q: %v", workflows.TimersTaskID(stored), err)
		}
		at := f.NewEngine(func(d *workflows.Deps) { d.Clock = clock.NewFake(now) })
		if err := testenv.Process(at, workflows.TypeVisitTimers, workflows.Payload{VisitID: "V-later", Step: s}); err != nil {
			t.Fatal(err)
		}
	}
	runChain(opens.Add(-workflows.TimerLead - time.Second))
	if err := roomTask(); err == nil {
		t.Fatalf("room:create enqueued before its hand over")
	}
	runChain(opens.Add(-workflows.TimerLead))
	if info, err := f.Inspector.GetTaskInfo(f.QueueName(workflows.QueueCritical), "V-later:"+workflows.TypeRoomCreate+":s0"); err != nil ||
		info.State != asynq.TaskStateScheduled || !info.NextProcessAt.Equal(opens) {
		t.Fatalf("room:create = %v, %v; want scheduled at scheduled_at - room_lead, %v", info, err, opens)
	}
}

func TestRoomEndCallsTwilioOnlyWhenTwilioHasNotEndedTheRoom(t *testing.T) {
	f, roomUpdates := newRoomEnv(t)
	ctx := context.Background()

	// Cancelled with an open room: room:end ends it through the REST API.
	cancelled, err := workflows.EnsureRoom(f.Engine, ctx, createIn(t, f, "V-cancelled", time.Hour).ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Engine.CancelVisit(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Process(f.Engine, workflows.TypeRoomEnd, workflows.Payload{VisitID: cancelled.ID}); err != nil {
		t.Fatalf("room:end = %v", err)
	}
	if rooms := f.Sandbox.RoomsNamed(t, cancelled.Room.Name); len(rooms) != 1 || rooms[0].Status != "completed" {
		t.Fatalf("cancelled visit's room = %v; want one, completed", rooms)
	}
	if n := roomUpdates.Load(); n != 1 {
		t.Fatalf("REST room updates after ending the cancelled visit's room = %d; want 1", n)
	}

	// Completed because Twilio reported the room ended: nothing to call.
	done, err := workflows.EnsureRoom(f.Engine, ctx, createIn(t, f, "V-done", time.Hour).ID)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for i, ev := range []workflows.VideoEvent{
		{Event: workflows.EventParticipantConnected, ParticipantSID: "PA1", ParticipantIdentity: "dr"},
		{Event: workflows.EventParticipantConnected, ParticipantSID: "PA2", ParticipantIdentity: "pat"},
		{Event: workflows.EventRoomEnded},
	} {
		ev.VisitHint, ev.RoomName, ev.RoomSID, ev.Timestamp = done.ID, done.Room.Name, done.Room.SID, at.Add(time.Duration(i)*time.Second)
		if _, err := f.Engine.ApplyVideo(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	v, err := f.Store.Get(ctx, done.ID)
	if err != nil || v.State() != visit.Completed {
		t.Fatalf("visit after room-ended = %v, %v; want completed", v.State(), err)
	}
	// No job for it either; one left over from an earlier version does nothing.
	if info, err := f.Inspector.GetTaskInfo(f.QueueName(workflows.QueueCritical), done.ID+":"+workflows.TypeRoomEnd+":"+done.Room.SID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatalf("completing the visit Twilio ended enqueued a room:end (%v, %v); want none", info, err)
	}
	if err := testenv.Process(f.Engine, workflows.TypeRoomEnd, workflows.Payload{VisitID: done.ID}); err != nil {
		t.Fatalf("room:end = %v", err)
	}
	if n := roomUpdates.Load(); n != 1 {
		t.Fatalf("REST room updates after Twilio ended the room itself = %d; want still 1", n)
	}
}

func TestEnsureRoomRefusesAFinishedVisit(t *testing.T) {
	f, _ := newRoomEnv(t)
	ctx := context.Background()
	v := createIn(t, f, "V-gone", time.Hour)
	if _, err := f.Engine.CancelVisit(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := workflows.EnsureRoom(f.Engine, ctx, v.ID); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("ensureRoom(cancelled visit) = %v; want visit.ErrInvalidChange naming the state", err)
	}
	if err := testenv.Process(f.Engine, workflows.TypeRoomCreate, workflows.Payload{VisitID: v.ID, Schedule: 0}); err != nil {
		t.Fatalf("room:create for a cancelled visit = %v; want nil (nothing to do)", err)
	}
	if rooms := f.Sandbox.RoomsNamed(t, v.Room.Name); len(rooms) != 0 {
		t.Fatalf("a cancelled visit got rooms %v; want none", rooms)
	}
}

func TestRoomStaysOpenUnusedUntilTheNoShowDeadline(t *testing.T) {
	f, _ := newRoomEnv(t)
	// Defaults: unused_room_timeout 5m, no_show_after 15m, empty_room_timeout
	// 5m raised to 7m: a whole interpreter dial sequence (3 attempts of 30s
	// ringing + 30s/60s/120s backoff + 2m of IVR and bridging) must fit.
	tests := []struct {
		id         string
		in         time.Duration
		wantUnused int // minutes, as Twilio receives them
	}{
		{"V-in10m", 10 * time.Minute, 25}, // 10m to go + 15m no-show grace
		{"V-in2h", 2 * time.Hour, 60},     // Twilio's maximum
		{"V-late", -time.Hour, 15},        // already due: the no-show grace alone
	}
	for _, tt := range tests {
		v, err := workflows.EnsureRoom(f.Engine, context.Background(), createIn(t, f, tt.id, tt.in).ID)
		if err != nil {
			t.Fatal(err)
		}
		rooms := f.Sandbox.RoomsNamed(t, v.Room.Name)
		if len(rooms) != 1 || rooms[0].UnusedRoomTimeout != tt.wantUnused || rooms[0].EmptyRoomTimeout != 7 {
			t.Fatalf("%s: rooms %v; want one with unused_room_timeout %v and empty_room_timeout 7", tt.id, rooms, tt.wantUnused)
		}
	}
}

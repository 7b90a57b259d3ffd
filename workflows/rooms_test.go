package workflows

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

// roomFixture is an engine on real Redis whose Twilio client talks HTTP to
// the emulator; roomUpdates counts REST requests that end a room.
type roomFixture struct {
	engine      *Engine
	inspector   *asynq.Inspector
	emulatorURL string
	roomUpdates atomic.Int32
}

func newRoomFixture(t *testing.T) *roomFixture {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redistest.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Our webhooks are not under test here: callbacks land in a sink.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	emu := sandbox.New(sandbox.Options{})
	t.Cleanup(emu.Close)
	f := &roomFixture{inspector: asynq.NewInspectorFromRedisClient(conn.Client)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/Rooms/") {
			f.roomUpdates.Add(1)
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.emulatorURL = srv.URL
	tw, err := twilioapi.New(twilioapi.Config{AccountSID: sandbox.DefaultAccountSID, AuthToken: sandbox.DefaultAuthToken,
		APIURL: srv.URL, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.HTTP.PublicBaseURL = sink.URL
	f.engine = New(Deps{Store: store.New(conn.Client), Queue: asynq.NewClientFromRedisClient(conn.Client),
		Deleter: f.inspector, Twilio: tw, Config: cfg})
	return f
}

func (f *roomFixture) create(t *testing.T, id string, in time.Duration) *visit.Visit {
	t.Helper()
	v, _, err := f.engine.CreateVisit(context.Background(), CreateInput{ID: id,
		ScheduledAt: time.Now().Add(in).UTC().Format(time.RFC3339),
		Provider:    PersonInput{Identity: "dr"}, Patient: PersonInput{Identity: "pat"}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// emulatorRooms lists the emulator's rooms named name.
func (f *roomFixture) emulatorRooms(t *testing.T, name string) []map[string]any {
	t.Helper()
	resp, err := http.Get(f.emulatorURL + "/rooms")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Rooms []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range list.Rooms {
		if r["unique_name"] == name {
			out = append(out, r)
		}
	}
	return out
}

func task(typ string, p Payload) *asynq.Task {
	b, _ := json.Marshal(p)
	return asynq.NewTask(typ, b)
}

func TestEnsureRoomConcurrentAndRepeatedMakesOneRoom(t *testing.T) {
	f := newRoomFixture(t)
	v := f.create(t, "V-dup", 2*time.Hour)
	ctx := context.Background()

	var wg sync.WaitGroup
	sids := make([]string, 8)
	errs := make([]error, 8)
	for i := range sids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := f.engine.ensureRoom(ctx, v.ID)
			errs[i] = err
			if got != nil {
				sids[i] = got.Room.SID
			}
		}()
	}
	wg.Wait()
	// The scheduled job firing as well (twice: a duplicate or a retry).
	for range 2 {
		if err := f.engine.handleRoomCreate(ctx, task(TypeRoomCreate, Payload{VisitID: v.ID, Schedule: 0})); err != nil {
			t.Fatalf("room:create = %v; want nil", err)
		}
	}

	rooms := f.emulatorRooms(t, v.Room.Name)
	if len(rooms) != 1 {
		t.Fatalf("emulator has %d rooms named %s; want 1", len(rooms), v.Room.Name)
	}
	for i := range sids {
		if errs[i] != nil || sids[i] != rooms[0]["sid"] {
			t.Fatalf("ensureRoom #%d = %q, %v; want %v, nil", i, sids[i], errs[i], rooms[0]["sid"])
		}
	}
	_, tl, err := f.engine.Visit(ctx, v.ID)
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
	if got := rooms[0]["status_callback"]; got != f.engine.cfg.HTTP.PublicBaseURL+"/twilio/video/status?visit=V-dup" {
		t.Fatalf("status_callback = %v; want our /twilio/video/status?visit=V-dup", got)
	}
}

func TestRoomCreateIsScheduledRoomLeadBeforeTheVisit(t *testing.T) {
	f := newRoomFixture(t)
	tests := []struct {
		id        string
		in        time.Duration
		wantState asynq.TaskState
	}{
		{"V-later", 2 * time.Hour, asynq.TaskStateScheduled}, // at scheduled_at - 30m
		{"V-soon", 10 * time.Minute, asynq.TaskStatePending}, // lead already past: now
	}
	for _, tt := range tests {
		v := f.create(t, tt.id, tt.in)
		info, err := f.inspector.GetTaskInfo(QueueCritical, tt.id+":"+TypeRoomCreate+":s0")
		if err != nil {
			t.Fatalf("%s: room:create task: %v", tt.id, err)
		}
		if info.State != tt.wantState {
			t.Fatalf("%s: room:create state = %v; want %v", tt.id, info.State, tt.wantState)
		}
		if want := v.ScheduledAt.Add(-f.engine.cfg.Visits.RoomLead); tt.wantState == asynq.TaskStateScheduled &&
			!info.NextProcessAt.Equal(want) {
			t.Fatalf("%s: room:create at %v; want %v (scheduled_at - room_lead)", tt.id, info.NextProcessAt, want)
		}
	}
}

func TestRoomEndCallsTwilioOnlyWhenTwilioHasNotEndedTheRoom(t *testing.T) {
	f := newRoomFixture(t)
	ctx := context.Background()

	// Cancelled with an open room: room:end ends it through the REST API.
	cancelled, err := f.engine.ensureRoom(ctx, f.create(t, "V-cancelled", time.Hour).ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.CancelVisit(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.handleRoomEnd(ctx, task(TypeRoomEnd, Payload{VisitID: cancelled.ID})); err != nil {
		t.Fatalf("room:end = %v", err)
	}
	if rooms := f.emulatorRooms(t, cancelled.Room.Name); len(rooms) != 1 || rooms[0]["status"] != "completed" {
		t.Fatalf("cancelled visit's room = %v; want one, completed", rooms)
	}
	if n := f.roomUpdates.Load(); n != 1 {
		t.Fatalf("REST room updates after ending the cancelled visit's room = %d; want 1", n)
	}

	// Completed because Twilio reported the room ended: nothing to call.
	done, err := f.engine.ensureRoom(ctx, f.create(t, "V-done", time.Hour).ID)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for i, ev := range []VideoEvent{
		{Event: EventParticipantConnected, ParticipantSID: "PA1", ParticipantIdentity: "dr"},
		{Event: EventParticipantConnected, ParticipantSID: "PA2", ParticipantIdentity: "pat"},
		{Event: EventRoomEnded},
	} {
		ev.VisitHint, ev.RoomName, ev.RoomSID, ev.Timestamp = done.ID, done.Room.Name, done.Room.SID, at.Add(time.Duration(i)*time.Second)
		if _, err := f.engine.ApplyVideo(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	v, err := f.engine.store.Get(ctx, done.ID)
	if err != nil || v.State() != visit.Completed {
		t.Fatalf("visit after room-ended = %v, %v; want completed", v.State(), err)
	}
	if _, err := f.inspector.GetTaskInfo(QueueCritical, done.ID+":"+TypeRoomEnd+":"+done.Room.SID); err != nil {
		t.Fatalf("completing the visit enqueued no room:end: %v", err)
	}
	if err := f.engine.handleRoomEnd(ctx, task(TypeRoomEnd, Payload{VisitID: done.ID})); err != nil {
		t.Fatalf("room:end = %v", err)
	}
	if n := f.roomUpdates.Load(); n != 1 {
		t.Fatalf("REST room updates after Twilio ended the room itself = %d; want still 1", n)
	}
}

func TestEnsureRoomRefusesAFinishedVisit(t *testing.T) {
	f := newRoomFixture(t)
	ctx := context.Background()
	v := f.create(t, "V-gone", time.Hour)
	if _, err := f.engine.CancelVisit(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.ensureRoom(ctx, v.ID); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("ensureRoom(cancelled visit) = %v; want visit.ErrInvalidChange naming the state", err)
	}
	if err := f.engine.handleRoomCreate(ctx, task(TypeRoomCreate, Payload{VisitID: v.ID, Schedule: 0})); err != nil {
		t.Fatalf("room:create for a cancelled visit = %v; want nil (nothing to do)", err)
	}
	if rooms := f.emulatorRooms(t, v.Room.Name); len(rooms) != 0 {
		t.Fatalf("a cancelled visit got rooms %v; want none", rooms)
	}
}

func TestRoomStaysOpenUnusedUntilTheNoShowDeadline(t *testing.T) {
	f := newRoomFixture(t)
	// Defaults: unused_room_timeout 5m, no_show_after 15m, empty_room_timeout
	// 5m raised to 7m: a whole interpreter dial sequence (3 attempts of 30s
	// ringing + 30s/60s/120s backoff + 2m of IVR and bridging) must fit.
	tests := []struct {
		id         string
		in         time.Duration
		wantUnused float64 // minutes, as Twilio receives them
	}{
		{"V-in10m", 10 * time.Minute, 25}, // 10m to go + 15m no-show grace
		{"V-in2h", 2 * time.Hour, 60},     // Twilio's maximum
		{"V-late", -time.Hour, 15},        // already due: the no-show grace alone
	}
	for _, tt := range tests {
		v, err := f.engine.ensureRoom(context.Background(), f.create(t, tt.id, tt.in).ID)
		if err != nil {
			t.Fatal(err)
		}
		rooms := f.emulatorRooms(t, v.Room.Name)
		if len(rooms) != 1 || rooms[0]["unused_room_timeout"] != tt.wantUnused || rooms[0]["empty_room_timeout"] != float64(7) {
			t.Fatalf("%s: rooms %v; want one with unused_room_timeout %v and empty_room_timeout 7", tt.id, rooms, tt.wantUnused)
		}
	}
}

package workflows_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

func TestBatchCreateArrayAndJSONLines(t *testing.T) {
	env := newSMSEnv(t)
	at := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	item := func(id string) string {
		return `{"id":"` + id + `","scheduled_at":"` + at + `","provider":{"identity":"dr"},"patient":{"identity":"p","phone":"` + patientPhone + `"}}`
	}
	code, body := env.APIRaw(http.MethodPost, "/v1/visits/batch",
		"["+item("B-1")+","+item("B-2")+`,{"id":"B-3","scheduled_at":"tomorrow"},`+item("B-1")+"]")
	if code != http.StatusOK {
		t.Fatalf("batch = %d %s", code, body)
	}
	for _, want := range []string{`"created":2`, `"existing":1`, `"failed":1`, `"index":2,"status":400`, `"field":"scheduled_at"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("batch answer %s lacks %s", body, want)
		}
	}
	code, body = env.APIRaw(http.MethodPost, "/v1/visits/batch", item("B-4")+"\n"+item("B-5")+"\n")
	if code != http.StatusOK || !strings.Contains(string(body), `"created":2`) {
		t.Fatalf("JSON lines batch = %d %s", code, body)
	}
	// Each created visit's schedule: one timer task holding its room, three
	// reminders and the no-show check (timers.go).
	if n := len(env.ScheduledIDs(workflows.QueueDefault)); n != 4 {
		t.Fatalf("scheduled tasks = %d; want 1 per visit", n)
	}
	for _, id := range []string{"B-1", "B-2", "B-4", "B-5"} {
		v, err := env.Store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(workflows.UpcomingTimers(v)); n != 5 {
			t.Errorf("%s has %d upcoming timers; want 5 (room, 3 reminders, no-show check)", id, n)
		}
	}
	var lines strings.Builder
	for i := 0; i <= workflows.BatchLimit; i++ {
		lines.WriteString("{}\n")
	}
	if code, body := env.APIRaw(http.MethodPost, "/v1/visits/batch", lines.String()); code != http.StatusBadRequest {
		t.Fatalf("batch of %d = %d %s; want 400", workflows.BatchLimit+1, code, body)
	}
}

// panickyStore is the real store with a bug planted in one create: it
// panics storing visit id, as a value that cannot be encoded once did.
type panickyStore struct {
	workflows.Store
	id string
}

func (s panickyStore) Create(ctx context.Context, v *visit.Visit) (*visit.Visit, bool, error) {
	panicStoring(s.id, v)
	return s.Store.Create(ctx, v)
}

// panicStoring panics when one of vs is visit id.
func panicStoring(id string, vs ...*visit.Visit) {
	for _, v := range vs {
		if v.ID == id {
			panic("planted: cannot store " + v.ID)
		}
	}
}

// A panic creating one batch item runs in a worker goroutine the HTTP
// server's recovery cannot reach: unrecovered it ends the whole process.
// It is that item's 500; the others are created, and the item's PIN goes back.
func TestBatchItemPanicIsThatItemsError(t *testing.T) {
	e := testenv.New(t)
	buggy := e.NewEngine(func(d *workflows.Deps) { d.Store = panickyStore{d.Store, "V-boom"} })
	at := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	in := func(id string) workflows.CreateInput {
		return workflows.CreateInput{ID: id, ScheduledAt: at, Provider: workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}}
	}
	items := buggy.CreateVisits(context.Background(), []workflows.CreateInput{in("V-fine"), in("V-boom"), in("V-also")})
	if got := []int{items[0].Status, items[1].Status, items[2].Status}; got[0] != 201 || got[1] != 500 || got[2] != 201 {
		t.Fatalf("batch statuses = %v; want [201 500 201]", got)
	}
	if !errors.Is(items[1].Err, workflows.ErrInternal) {
		t.Errorf("the panicking item's error = %v; want ErrInternal", items[1].Err)
	}
	if pins := e.AllKeys(e.Key("vf:idx:pin:*")); len(pins) != 2 {
		t.Errorf("PIN index = %v; want the two created visits' PINs only", pins)
	}
}

// panickyBatchStore is panickyStore for the pipelined batch path: the
// store's batch create panics on a chunk holding visit id, and so does its
// one-by-one create of id.
type panickyBatchStore struct {
	*store.Store
	id string
}

func (s panickyBatchStore) CreateMany(ctx context.Context, vs []*visit.Visit) ([]*visit.Visit, []bool, []error) {
	panicStoring(s.id, vs...)
	return s.Store.CreateMany(ctx, vs)
}

func (s panickyBatchStore) Create(ctx context.Context, v *visit.Visit) (*visit.Visit, bool, error) {
	panicStoring(s.id, v)
	return s.Store.Create(ctx, v)
}

// The same on the pipelined path, where one panic would take its whole
// chunk: that item's 500 only, the others created (their timers
// scheduled), the PINs of visits not stored given back.
func TestBatchChunkPanicIsThatItemsError(t *testing.T) {
	e := testenv.New(t)
	buggy := e.NewEngine(func(d *workflows.Deps) { d.Store = panickyBatchStore{e.Store, "V-boom"} })
	at := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	in := func(id string) workflows.CreateInput {
		return workflows.CreateInput{ID: id, ScheduledAt: at, Provider: workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}}
	}
	items := buggy.CreateVisits(context.Background(), []workflows.CreateInput{in("V-fine"), in("V-boom"), in("V-also"), in("V-fine")})
	// V-fine twice: one of them creates it, the other finds it.
	got := []int{items[0].Status, items[1].Status, items[2].Status, items[3].Status}
	if !slices.Equal(got, []int{201, 500, 201, 200}) && !slices.Equal(got, []int{200, 500, 201, 201}) {
		t.Fatalf("batch statuses = %v; want [201 500 201 200] (or the two V-fine the other way round)", got)
	}
	if pins := e.AllKeys(e.Key("vf:idx:pin:*")); len(pins) != 2 {
		t.Errorf("PIN index = %v; want the two created visits' PINs only", pins)
	}
	for _, id := range []string{"V-fine", "V-also"} {
		if ids := scheduledOf(e, id); len(ids) != 1 {
			t.Errorf("%s scheduled tasks = %v; want its timer chain", id, ids)
		}
	}
}

// A visit stored while the request fingerprint was the whole SHA-256 in
// hex answers a replay of its create as before: 200 with the visit, in a
// batch and alone, and a different body is still a conflict.
func TestCreateReplayOfAVisitStoredWithTheLongFingerprint(t *testing.T) {
	e := testenv.New(t)
	in := workflows.CreateInput{ID: "V-long", ScheduledAt: time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339), Timezone: "UTC",
		Provider: workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}}
	b, _ := json.Marshal(in)
	sum := sha256.Sum256(b)
	old := &visit.Visit{ID: "V-long", ScheduledAt: time.Now().Add(48 * time.Hour), Timezone: "UTC", Room: visit.Room{Name: visit.RoomName("V-long")},
		Provider: visit.Person{Identity: "dr"}, Patient: visit.Person{Identity: "pat"}, RequestHash: hex.EncodeToString(sum[:])}
	if _, created, err := e.Store.Create(context.Background(), old); err != nil || !created {
		t.Fatalf("storing the old visit: %v, %v", created, err)
	}
	if _, created, err := e.Engine.CreateVisit(context.Background(), in); err != nil || created {
		t.Errorf("CreateVisit(replay) = created %v, %v; want the existing visit", created, err)
	}
	other := in
	other.Patient.Identity = "someone-else"
	items := e.Engine.CreateVisits(context.Background(), []workflows.CreateInput{in, other})
	if items[0].Status != 200 || items[1].Status != 409 {
		t.Errorf("batch replay statuses = %d, %d; want 200 (same body), 409 (another body)", items[0].Status, items[1].Status)
	}
}

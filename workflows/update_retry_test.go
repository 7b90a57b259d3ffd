package workflows

import (
	"context"
	"net/http"
	"net/http/httptest"
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

// contendedStore is a store whose every update loses its first transaction
// to another writer making the very same change, as two workers running one
// job at once do: fn runs, the other writer commits fn's change, and fn runs
// again on what that writer left (Redis WATCH retries exactly so).
type contendedStore struct{ Store }

func (s contendedStore) Update(ctx context.Context, id, token string, fn func(v *visit.Visit) error) (visit.Change, error) {
	if v, err := s.Store.Get(ctx, id); err == nil {
		_ = fn(v) // the attempt whose transaction fails
	}
	if _, err := s.Store.Update(ctx, id, "", fn); err != nil { // the other writer
		return visit.Change{}, err
	}
	return s.Store.Update(ctx, id, token, fn)
}

// TestDialJobLosingItsClaimToAnotherWorkerPlacesNoCall: a dial job whose
// claim transaction is retried after another worker claimed the same attempt
// must see the claim taken and place no call (a value set by the failed run
// of the update must not survive into the retry).
func TestDialJobLosingItsClaimToAnotherWorkerPlacesNoCall(t *testing.T) {
	ctx := context.Background()
	conn, err := redisx.Connect(ctx, redistest.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(sink.Close)
	emu := sandbox.New(sandbox.Options{})
	t.Cleanup(emu.Close)
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)
	cfg := config.Default()
	tw, err := twilioapi.New(twilioapi.Config{AccountSID: sandbox.DefaultAccountSID, AuthToken: sandbox.DefaultAuthToken,
		FromNumber: cfg.Twilio.FromNumber, APIURL: emuSrv.URL, Timeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.PublicBaseURL = sink.URL
	cfg.Interpreter.Lines = map[string]config.InterpreterLine{"es": {Phone: "+15551239999"}}
	st := store.New(conn.Client)
	deps := Deps{Store: st, Queue: asynq.NewClientFromRedisClient(conn.Client), Twilio: tw, Config: cfg}
	plain := New(deps)
	if _, _, err := plain.CreateVisit(ctx, CreateInput{ID: "V-race", ScheduledAt: time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
		Provider: PersonInput{Identity: "dr"}, Patient: PersonInput{Identity: "pat"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.RequestInterpreter(ctx, "V-race", "es"); err != nil {
		t.Fatal(err)
	}

	deps.Store = contendedStore{st}
	contended := New(deps)
	if err := contended.handleInterpreterDial(ctx, task(TypeInterpreterDial, Payload{VisitID: "V-race", Request: 1, Attempt: 1})); err != nil {
		t.Fatalf("dial job = %v; want nil (nothing to do: the other worker holds the claim)", err)
	}
	calls, err := sandbox.NewClient(emuSrv.URL, nil).Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Fatalf("the dial job that lost its claim placed %d call(s); want none (the worker holding the claim places it)", len(calls))
	}
	v, err := st.Get(ctx, "V-race")
	if err != nil {
		t.Fatal(err)
	}
	if v.Interpreter.State != visit.LegDialing || v.Interpreter.Attempts != 1 {
		t.Fatalf("leg = %s on attempt %d; want dialing attempt 1 (claimed once)", v.Interpreter.State, v.Interpreter.Attempts)
	}
}

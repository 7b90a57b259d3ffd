package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// contendedStore is a store whose every update loses its first transaction
// to another writer making the very same change, as two workers running one
// job at once do: fn runs, the other writer commits fn's change, and fn runs
// again on what that writer left (Redis WATCH retries exactly so).
type contendedStore struct{ workflows.Store }

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
	e := testenv.New(t, testenv.WithSandbox(nil), testenv.Configure(func(cfg *config.Config) {
		cfg.Interpreter.Lines = map[string]config.InterpreterLine{"es": {Phone: "+15551239999"}}
	}))
	e.CreateEngineVisit(workflows.CreateInput{ID: "V-race", ScheduledAt: time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
		Provider: workflows.PersonInput{Identity: "dr"}, Patient: workflows.PersonInput{Identity: "pat"}})
	if _, err := e.Engine.RequestInterpreter(ctx, "V-race", "es"); err != nil {
		t.Fatal(err)
	}

	contended := e.NewEngine(func(d *workflows.Deps) { d.Store = contendedStore{d.Store} })
	if err := testenv.Process(contended, workflows.TypeInterpreterDial, workflows.Payload{VisitID: "V-race", Request: 1, Attempt: 1}); err != nil {
		t.Fatalf("dial job = %v; want nil (nothing to do: the other worker holds the claim)", err)
	}
	calls, err := e.Sandbox.Client.Calls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Fatalf("the dial job that lost its claim placed %d call(s); want none (the worker holding the claim places it)", len(calls))
	}
	v, err := e.Store.Get(ctx, "V-race")
	if err != nil {
		t.Fatal(err)
	}
	if v.Interpreter.State != visit.LegDialing || v.Interpreter.Attempts != 1 {
		t.Fatalf("leg = %s on attempt %d; want dialing attempt 1 (claimed once)", v.Interpreter.State, v.Interpreter.Attempts)
	}
}

package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// phiPanickingStore panics, reading a visit, with the patient's name and
// phone in the panic's value, as a bug near patient data might.
type phiPanickingStore struct{ workflows.Store }

func (phiPanickingStore) Get(context.Context, string) (*visit.Visit, error) {
	panic(fmt.Sprintf("cannot read the visit of Sam (%s)", testenv.PatientPhone))
}

func (s phiPanickingStore) GetWithTimeline(ctx context.Context, id string) (*visit.Visit, []visit.Entry, error) {
	v, err := s.Get(ctx, id)
	return v, nil, err
}

// A request whose handler panics is a 500 with a log line that says where
// (the stack) and what kind of panic, never the panic's value: it may hold
// PHI.
func TestPanicIsLoggedWithoutItsValue(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	e := testenv.New(t, testenv.Server(func(e *testenv.Env, d *handlers.Deps) {
		d.Engine = e.NewEngine(func(wd *workflows.Deps) { wd.Store = phiPanickingStore{wd.Store} })
		d.Log = zap.New(core)
	}))
	if code := e.API(http.MethodGet, "/v1/visits/V-1", nil, nil); code != http.StatusInternalServerError {
		t.Fatalf("GET of a visit whose read panics = %d; want 500", code)
	}
	found := false
	for _, entry := range logs.All() {
		line := entry.Message + " " + fmt.Sprint(entry.ContextMap())
		if strings.Contains(line, testenv.PatientPhone) || strings.Contains(line, "Sam") {
			t.Errorf("log line carries the panic's PHI: %s", line)
		}
		if entry.Message == "panic serving request" {
			found = true
			if p, _ := entry.ContextMap()["panic"].(string); !strings.Contains(p, "string") {
				t.Errorf("panic field = %q; want the kind of panic", p)
			}
		}
	}
	if !found {
		t.Fatal("the panic was not logged")
	}
}

package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

// A request whose handler panics is a 500 with a log line that says where
// (the stack) and what kind of panic, never the panic's value: it may hold
// PHI.
func TestPanicIsLoggedWithoutItsValue(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	e := testenv.New(t, testenv.Server(func(e *testenv.Env, d *handlers.Deps) {
		d.Engine = e.NewEngine(func(wd *workflows.Deps) { wd.Store = testenv.PHIPanickingStore{Store: wd.Store} })
		d.Log = zap.New(core)
	}))
	if code := e.API(http.MethodGet, "/v1/visits/V-1", nil, nil); code != http.StatusInternalServerError {
		t.Fatalf("GET of a visit whose read panics = %d; want 500", code)
	}
	entry := testenv.PanicLogged(t, logs, "panic serving request")
	if p, _ := entry.ContextMap()["panic"].(string); !strings.Contains(p, "string") {
		t.Errorf("panic field = %q; want the kind of panic", p)
	}
}

// Package handlers is visitflow's HTTP edge: routes.go lists every route,
// each route has one maker func, and middleware (Twilio signature, auth,
// body limit, request log, panic recovery) wraps them. Handlers never touch
// Redis or Twilio directly: they parse, call workflows, and translate the
// outcome to a status code.
package handlers

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/workflows"
)

// Deps are what the HTTP edge needs.
type Deps struct {
	Engine  *workflows.Engine
	Config  config.Config
	Log     *zap.Logger
	Metrics *metrics.Metrics
	// Ready reports whether the service can do its work (Redis reachable,
	// workers registered); nil error means ready.
	Ready func(ctx context.Context) error
	// Dashboard is the Asynq dashboard, served under /admin/queues.
	Dashboard http.Handler
	// Board is the visit board, served under /admin/visits (optional).
	Board http.Handler
	// Sandbox is the Twilio emulator, served under /sandbox/ (sandbox mode only).
	Sandbox http.Handler
}

// NewServer returns the whole HTTP surface.
func NewServer(d Deps) http.Handler {
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Metrics == nil {
		d.Metrics = metrics.New()
	}
	r := mux.NewRouter()
	addRoutes(r, d)
	r.NotFoundHandler = unrouted(r)
	r.MethodNotAllowedHandler = r.NotFoundHandler
	return recoverPanics(d.Log, logRequests(d.Log, r))
}

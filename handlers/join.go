package handlers

import (
	"errors"
	"io"
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/joinpage"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// join.go is the patient's side of the API: POST /v1/join/{invite} and GET
// /v1/join/{invite}/status, the /v1 routes without bearer auth, where the
// invite secret is the credential. The page itself, GET /join/{invite}, is
// internal/joinpage.
// handleJoin: POST /v1/join/{invite}: the invite is the credential.
func handleJoin(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		g, err := d.Engine.Join(r.Context(), mux.Vars(r)["invite"])
		if errors.Is(err, visit.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no such invitation", "")
			return
		}
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	})
}

// handleJoinStatus: GET /v1/join/{invite}/status: where the invite's visit
// stands, for the join page to follow (workflows.JoinStatus: nothing the
// SMS did not already say, no phone numbers). A cancelled, ended or expired
// invite answers 200 too, its phase saying which (the question was
// answered; POST /v1/join is what refuses it, 410); an unknown one 404.
func handleJoinStatus(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		st, err := d.Engine.JoinStatus(r.Context(), mux.Vars(r)["invite"])
		switch {
		case errors.Is(err, visit.ErrNotFound):
			writeError(w, http.StatusNotFound, "not_found", "no such invitation", "")
		case err != nil && !errors.Is(err, workflows.ErrGone):
			d.apiFailure(w, r, err)
		default:
			writeJSON(w, http.StatusOK, st)
		}
	})
}

// joinPage is the patient's page, reading invites through the engine.
func joinPage(d Deps) http.Handler {
	o := joinpage.Options{Invites: d.Engine, OnError: func(r *http.Request, err error) {
		d.Log.Error("join page: read invite", zap.Error(err))
	}}
	if d.Sandbox != nil {
		o.SandboxPath = "/sandbox"
	}
	return joinpage.New(o)
}

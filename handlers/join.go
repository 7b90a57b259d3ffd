package handlers

import (
	"errors"
	"io"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/visitflow/visitflow/internal/visit"
)

// join.go is the patient's side of the API: POST /v1/join/{invite}, the one
// /v1 route without bearer auth, where the invite secret is the credential.
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

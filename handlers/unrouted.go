package handlers

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// routeMethods are the methods a route of ours may be registered for.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unrouted answers what no route took: 405 with the Allow header when the
// path exists for other methods (a GET on a Twilio callback route, a PUT on
// a visit), else 404. gorilla/mux alone says 404 for a wrong method on a
// subrouter's route, and never sends Allow.
func unrouted(router *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range routeMethods {
			probe := r.Clone(r.Context())
			probe.Method = m
			var match mux.RouteMatch
			if router.Match(probe, &match) && match.MatchErr == nil {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) == 0 {
			writeError(w, http.StatusNotFound, "not_found", "no such route", "")
			return
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			r.Method+" is not allowed here; allowed: "+strings.Join(allowed, ", "), "")
	})
}

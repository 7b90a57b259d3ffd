package handlers

import (
	"net/http"
	"strconv"

	"github.com/visitflow/visitflow/internal/metrics"
)

// countAPI counts scheduling API requests by route template (/v1/visits/{id},
// never the id itself) and status code. It runs inside the router, after
// the route matched, so the template is known; it wraps auth and the body
// limit so 401 and 413 are counted too.
func countAPI(m *metrics.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			next.ServeHTTP(sw, r)
			m.APIRequests.WithLabelValues(routeLabel(r), strconv.Itoa(sw.code)).Inc()
		})
	}
}

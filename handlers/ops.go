package handlers

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout bounds one readiness check: a probe must get its answer
// even while Redis stalls.
const readyTimeout = 2 * time.Second

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
}

// handleReadyz answers 200 when Redis answers and workers are registered,
// else 503. Why it is not ready (Redis addresses, client errors) is shown
// only to a request with the admin credentials; anyone else learns "not
// ready". The answer comes within readyTimeout even when the check itself
// hangs (a Redis client's own timeouts and retries outlast a context
// deadline): the check then goes on in the background and its result is
// dropped.
func handleReadyz(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.Ready != nil {
			if err := checkReady(r.Context(), d.Ready); err != nil {
				message := "not ready"
				if d.isAdmin(r) {
					message = "not ready: " + err.Error()
				}
				writeError(w, http.StatusServiceUnavailable, "not_ready", message, "")
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ready\n"))
	})
}

// errReadyTimeout: the readiness check did not finish within readyTimeout.
type errReadyTimeout struct{}

func (errReadyTimeout) Error() string {
	return "readiness check did not finish within " + readyTimeout.String()
}

func checkReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ready(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errReadyTimeout{}
	}
}

// isAdmin reports whether r carries the admin basic-auth credentials.
func (d Deps) isAdmin(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	userOK, passOK := secretEqual(u, d.Config.Admin.Username), secretEqual(p, d.Config.Admin.Password)
	return ok && d.Config.Admin.Password != "" && userOK && passOK
}

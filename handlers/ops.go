package handlers

import (
	"context"
	"net/http"
	"sync"
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
// deadline): the check then finishes in the background, and probes that
// arrive meanwhile wait for that same check instead of starting more.
func handleReadyz(d Deps) http.Handler {
	checks := &readiness{check: d.Ready}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.Ready != nil {
			if err := checks.ready(r.Context()); err != nil {
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

// readiness runs at most one readiness check at a time.
type readiness struct {
	check func(context.Context) error
	mu    sync.Mutex
	cur   *readyFlight
}

// readyFlight is one check: done closes when err is set.
type readyFlight struct {
	done chan struct{}
	err  error
}

// errReadyTimeout: the readiness check did not finish within readyTimeout.
type errReadyTimeout struct{}

func (errReadyTimeout) Error() string {
	return "readiness check did not finish within " + readyTimeout.String()
}

func (c *readiness) ready(ctx context.Context) error {
	c.mu.Lock()
	f := c.cur
	if f == nil {
		f = &readyFlight{done: make(chan struct{})}
		c.cur = f
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
			defer cancel()
			f.err = c.check(cctx)
			c.mu.Lock()
			c.cur = nil
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	wait, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	select {
	case <-f.done:
		return f.err
	case <-wait.Done():
		return errReadyTimeout{}
	}
}

// isAdmin reports whether r carries the admin basic-auth credentials.
func (d Deps) isAdmin(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	userOK, passOK := secretEqual(u, d.Config.Admin.Username), secretEqual(p, d.Config.Admin.Password)
	return ok && d.Config.Admin.Password != "" && userOK && passOK
}

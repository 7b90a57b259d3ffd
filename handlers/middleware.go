package handlers

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

// apiMaxBody bounds scheduling API bodies (batch creates are large).
const apiMaxBody = 32 << 20

// limitBody reads the whole body up to max bytes; larger bodies get 413.
// Later handlers read the buffered copy.
func limitBody(max int64, m *metrics.Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					m.WebhookRequests.WithLabelValues(routeLabel(r), "too_large").Inc()
					writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body is larger than the limit", "")
					return
				}
				writeError(w, http.StatusBadRequest, "bad_body", "could not read the request body", "")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r.WithContext(withBody(r.Context(), body)))
		})
	}
}

// verifyTwilio refuses requests whose X-Twilio-Signature does not match the
// URL Twilio was given (public_base_url + path + query) and the body: 403,
// nothing recorded. On success the form is parsed from the body only.
func verifyTwilio(d Deps) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body := bodyFrom(r.Context())
			if err := twiliosig.Check(d.Config.Twilio.AuthToken, d.Config.HTTP.PublicBaseURL, r, body); err != nil {
				reason := "invalid"
				if errors.Is(err, twiliosig.ErrMissing) {
					reason = "missing"
				}
				d.Metrics.SignatureRejections.WithLabelValues(routeLabel(r), reason).Inc()
				d.Metrics.WebhookRequests.WithLabelValues(routeLabel(r), "forbidden").Inc()
				d.Log.Warn("twilio signature rejected", zap.String("route", r.URL.Path), zap.String("reason", reason))
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			form, err := url.ParseQuery(string(body))
			if err != nil && isForm(r) {
				writeError(w, http.StatusBadRequest, "bad_form", "body is not a valid form", "")
				return
			}
			r.PostForm = form
			next.ServeHTTP(w, r)
		})
	}
}

func isForm(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

// requireBearer checks Authorization: Bearer <token> against every API
// token in constant time and names the token's holder for the audit trail.
func requireBearer(tokens apiTokens) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			name, known := tokens.match(got)
			if !ok || !known {
				w.Header().Set("WWW-Authenticate", `Bearer realm="visitflow"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required", "")
				return
			}
			next.ServeHTTP(w, r.WithContext(audit.WithActor(r.Context(), audit.TokenActor(name))))
		})
	}
}

// requireBasic checks HTTP basic auth in constant time.
func requireBasic(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || pass == "" ||
				subtle.ConstantTimeCompare([]byte(u), []byte(user))&subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="visitflow admin"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// statusWriter remembers the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the real writer (asynqmon streams).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs method, path (no query: it may carry ids only, but
// bodies and queries are never logged) status and duration.
func logRequests(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		if strings.HasPrefix(r.URL.Path, "/admin/queues/") && sw.code < 400 {
			return // the dashboard polls; its successes are noise
		}
		log.Debug("http", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", sw.code), zap.Duration("took", time.Since(start)))
	})
}

// recoverPanics turns a panic into a 500 and one log line.
func recoverPanics(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving request", zap.String("path", r.URL.Path), zap.Any("panic", v), zap.Stack("stack"))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

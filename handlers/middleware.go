package handlers

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/internal/panics"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

// Bounds of scheduling API bodies: a visit, a patch, an invite are small;
// a batch create alone is large, and is read as a stream.
const (
	apiMaxBody   = 64 << 10
	batchMaxBody = 32 << 20
)

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

// chain wraps h in middleware, the first given outermost (as Router.Use).
func chain(h http.Handler, mw ...func(http.Handler) http.Handler) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// capBody bounds the body a handler may read to max bytes without reading
// it: the handler decodes from the stream, and going past max is 413
// (errBodyTooLarge). It runs after authentication, so an unauthenticated
// request's body is never read at all.
func capBody(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				writeError(w, http.StatusRequestEntityTooLarge, "too_large",
					fmt.Sprintf("request body is larger than the limit of %d bytes", max), "body")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, max)
			next.ServeHTTP(w, r)
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
			// Parsed once: the signature covers these values and the
			// handler reads them.
			form, formErr := url.ParseQuery(string(body))
			signed := form
			if formErr != nil || !isForm(r) {
				signed = nil // the check decides what an unparsable or non-form body means
			}
			if err := twiliosig.CheckAnyForm(signingTokens(d.Config.Twilio, form), d.Config.HTTP.PublicBaseURL, r, body, signed); err != nil {
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
			if formErr != nil && isForm(r) {
				writeError(w, http.StatusBadRequest, "bad_form", "body is not a valid form", "")
				return
			}
			r.PostForm = form
			next.ServeHTTP(w, r)
		})
	}
}

// signingTokens are the auth tokens a callback's signature may be made
// with: the token of the sub-account named by its AccountSid, when one is
// configured (twilio.subaccount_tokens), then twilio.auth_token and
// twilio.secondary_auth_token (a rotation in progress). The AccountSid is
// read from the unverified form only to choose the key; the signature
// still has to match under it.
func signingTokens(c config.Twilio, form url.Values) []string {
	if len(c.SubaccountTokens) > 0 {
		if tok, ok := c.SubaccountTokens[form.Get("AccountSid")]; ok {
			return []string{tok, c.AuthToken, c.SecondaryAuthToken}
		}
	}
	return []string{c.AuthToken, c.SecondaryAuthToken}
}

func isForm(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

// requireBearer checks Authorization: Bearer <token> against every API
// token in constant time and names the token's holder for the audit trail.
// It reads no body, so it must run before anything that does.
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

// requireBasic checks HTTP basic auth. It reads no body.
func requireBasic(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			// Both compared, always, so the time taken does not say which
			// one was wrong.
			userOK, passOK := secretEqual(u, user), secretEqual(p, pass)
			if !ok || pass == "" || !(userOK && passOK) {
				w.Header().Set("WWW-Authenticate", `Basic realm="visitflow admin"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// secretEqual compares a presented credential with the configured one in
// time that depends on neither: both are hashed first, and the hashes have
// the same length whatever the inputs. (subtle.ConstantTimeCompare on the
// raw strings returns at once when the lengths differ, which tells an
// attacker the secret's length.)
func secretEqual(got, want string) bool {
	return subtle.ConstantTimeCompare(credentialDigest(got), credentialDigest(want)) == 1
}

// credentialDigest is the fixed-length form in which credentials are compared.
func credentialDigest(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
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
		log.Debug("http", zap.String("method", r.Method), zap.String("path", loggedPath(r.URL.Path)),
			zap.Int("status", sw.code), zap.Duration("took", time.Since(start)))
	})
}

// secretPathPrefixes are routes whose last path segment is a credential
// (an invite secret): the request log shows the route, never the secret.
var secretPathPrefixes = []string{"/v1/join/", "/join/"}

// loggedPath is path as the request log may show it.
func loggedPath(path string) string {
	for _, p := range secretPathPrefixes {
		if strings.HasPrefix(path, p) {
			return p + "(redacted)"
		}
	}
	return path
}

// recoverPanics turns a panic into a 500 and one log line.
func recoverPanics(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic serving request", zap.String("path", loggedPath(r.URL.Path)), zap.String("panic", panics.Describe(v)), zap.Stack("stack"))
				writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

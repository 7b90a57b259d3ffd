package handlers

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// The Content-Security-Policy of the admin pages. They show masked PHI to
// support staff behind basic auth; the policy makes an injection that got
// past html/template's escaping inert (no script but ours, no framing, no
// form posting elsewhere, no plugin, no <base> hijack).
const (
	// pageCSP is for every admin page but the dashboard: the visit board
	// (which sets the same policy itself: server-rendered HTML, one inline
	// <style>, no script at all) and the admin 404s.
	pageCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	// dashboardCSPFormat: the Asynq dashboard is a React app from
	// asynqmon; its two inline scripts are allowed by their hashes (%s),
	// its styles are injected at run time (Material UI), its fonts come
	// from Google Fonts, and it calls only its own API.
	dashboardCSPFormat = "default-src 'self'; script-src 'self' %s; " +
		"style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; font-src 'self' https://fonts.gstatic.com; " +
		"img-src 'self' data:; connect-src 'self'; object-src 'none'; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

// adminHeaders sets the security headers of every /admin answer: the
// policy of the page (the dashboard's under dashboardPrefix, else pageCSP),
// no sniffing, no framing, no referrer, no caching.
func adminHeaders(dashboardPrefix string, dashboard http.Handler) func(http.Handler) http.Handler {
	dashCSP := &inlineScriptPolicy{page: dashboard, path: dashboardPrefix + "/"}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			csp := pageCSP
			if dashboard != nil && strings.HasPrefix(r.URL.Path, dashboardPrefix) {
				csp = dashCSP.policy(r)
			}
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-store")
			next.ServeHTTP(w, r)
		})
	}
}

// inlineScriptPolicy computes, once, the dashboard's policy with the
// hashes of the inline scripts its index page really serves (asynqmon
// renders them with our root path and read-only flag), so the policy
// follows an asynqmon upgrade instead of pinning hashes of one version.
type inlineScriptPolicy struct {
	page http.Handler
	path string
	once sync.Once
	csp  string
}

var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

func (p *inlineScriptPolicy) policy(r *http.Request) string {
	p.once.Do(func() {
		probe, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, p.path, nil)
		rec := &bodyRecorder{header: http.Header{}}
		p.page.ServeHTTP(rec, probe)
		var hashes []string
		for _, m := range inlineScript.FindAllStringSubmatch(rec.body.String(), -1) {
			sum := sha256.Sum256([]byte(m[1]))
			hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		p.csp = strings.Replace(dashboardCSPFormat, "%s", strings.Join(hashes, " "), 1)
	})
	return p.csp
}

// bodyRecorder keeps what a handler writes (the dashboard's index page).
type bodyRecorder struct {
	header http.Header
	body   strings.Builder
}

func (b *bodyRecorder) Header() http.Header         { return b.header }
func (b *bodyRecorder) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bodyRecorder) WriteHeader(int)             {}

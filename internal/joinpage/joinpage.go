// Package joinpage is the patient's side of a visit: the page that the join
// link in every patient and guest SMS opens, GET /join/{invite} (contract
// §10). It is server-rendered (html/template) with one small script, made
// for a phone screen first, and embedded in the binary with its assets.
//
// The page says whom the visit is with and when (in the visit's time zone),
// previews camera and microphone, and joins: it exchanges the invite for a
// room-scoped token (POST /v1/join/{invite}) and connects with the Twilio
// Video JavaScript SDK, vendored under assets/vendor (no CDN), or in sandbox
// mode joins the emulator's room through its control API, so the whole
// story is clickable without a Twilio account. It then follows the visit by
// polling GET /v1/join/{invite}/status, which shows no more than the SMS
// did: the patient waits in the virtual waiting room until the provider
// arrives. A cancelled, ended or expired invite gets a plain page (410), an
// unknown one 404, with neither a join button nor a script.
//
// The invite is the credential: nothing here needs a login, and nothing the
// page shows carries a phone number or any name but the provider's.
package joinpage

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// Invites is what the page reads (implemented by *workflows.Engine).
type Invites interface {
	JoinStatus(ctx context.Context, secret string) (workflows.JoinStatus, error)
}

// Options configure the page.
type Options struct {
	Invites Invites
	// SandboxPath is where the emulator's control API is mounted
	// ("/sandbox") in sandbox mode; empty means real Twilio.
	SandboxPath string
	// OnError is told about a failure to read an invite (Redis down), which
	// the page answers with 503; nil ignores it.
	OnError func(r *http.Request, err error)
}

// Prefix is where the page is mounted.
const Prefix = "/join/"

// twilioVideoScript is the vendored SDK, pinned (assets/vendor/twilio-video/README.md).
const twilioVideoScript = "vendor/twilio-video/twilio-video-2.36.0.min.js"

//go:embed assets
var assetFiles embed.FS

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// New returns the handler of Prefix: Prefix+"{invite}" (the page) and
// Prefix+"assets/…" (its script, style and the vendored SDK).
func New(o Options) http.Handler {
	assets, _ := fs.Sub(assetFiles, "assets")
	p := &page{o: o, assets: http.StripPrefix(Prefix+"assets/", http.FileServer(http.FS(assets)))}
	return http.HandlerFunc(p.serve)
}

type page struct {
	o      Options
	assets http.Handler
}

// view is what the template renders.
type view struct {
	Status workflows.JoinStatus
	// Invite is the secret from the URL, handed to the script for the join
	// and status calls (it is already in the address bar).
	Invite string
	// Title and Message explain a page without a join button.
	Title, Message string
	Open           bool
	Mode           string // "sandbox" or "twilio"
	SandboxPath    string
	SDK            string
}

func (p *page) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, Prefix)
	if strings.HasPrefix(rest, "assets/") {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		p.assets.ServeHTTP(w, r)
		return
	}
	setPageHeaders(w, p.o.SandboxPath == "")
	if rest == "" || strings.Contains(rest, "/") {
		p.render(w, http.StatusNotFound, unknownInvite())
		return
	}
	st, err := p.o.Invites.JoinStatus(r.Context(), rest)
	switch {
	case errors.Is(err, visit.ErrNotFound):
		p.render(w, http.StatusNotFound, unknownInvite())
	case errors.Is(err, workflows.ErrGone):
		p.render(w, http.StatusGone, goneView(st))
	case err != nil:
		if p.o.OnError != nil {
			p.o.OnError(r, err)
		}
		p.render(w, http.StatusServiceUnavailable, view{Title: "Please try again in a minute",
			Message: "We cannot open your visit right now. Reload this page in a minute."})
	default:
		v := view{Status: st, Invite: rest, Open: true, Mode: "twilio", SDK: Prefix + "assets/" + twilioVideoScript}
		if p.o.SandboxPath != "" {
			v.Mode, v.SandboxPath, v.SDK = "sandbox", p.o.SandboxPath, ""
		}
		p.render(w, http.StatusOK, v)
	}
}

func unknownInvite() view {
	return view{Title: "This link is not valid",
		Message: "Check that you opened the whole link from your text message, or call your clinic."}
}

// goneView says why an invite no longer opens its visit.
func goneView(st workflows.JoinStatus) view {
	v := view{Status: st}
	switch st.Phase {
	case workflows.JoinCancelled:
		v.Title, v.Message = "This visit was cancelled", "Your clinic cancelled this visit. Call them if you need a new appointment."
	case workflows.JoinExpired:
		v.Title, v.Message = "This link has expired", "The time for this visit has passed. Call your clinic if you still need to be seen."
	default:
		v.Title, v.Message = "This visit has ended", "Thank you. You can close this page."
	}
	return v
}

// setPageHeaders keeps the page (whose URL is a credential) out of caches
// and referrers, and limits what it may load: its own scripts and styles,
// nothing inline, and in real mode (twilioSDK) the Twilio Video endpoints.
//
// The Twilio Video SDK 2.36.0 builds its dynamic-import helper with
// new Function when it loads (Twilio's README asks for 'unsafe-eval' only
// for Krisp noise cancellation, but the helper runs regardless), so the
// real-mode page allows eval; the sandbox page, which loads no SDK, does not.
func setPageHeaders(w http.ResponseWriter, twilioSDK bool) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	script, connect := "script-src 'self'", "connect-src 'self'"
	if twilioSDK {
		script += " 'unsafe-eval'"
		connect += " https://*.twilio.com wss://*.twilio.com"
	}
	h.Set("Content-Security-Policy", "default-src 'self'; "+script+"; style-src 'self'; "+
		"img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "+connect+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self)")
}

func (p *page) render(w http.ResponseWriter, status int, v view) {
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, v); err != nil {
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// Package twilioapi is the only package that calls Twilio's REST API. It wraps
// twilio-go with what visitflow needs: per-call timeouts, an optional base URL
// override (twilio.api_url) for tests, the sandbox emulator and egress
// proxies, and errors classified once into retryable and permanent without
// any phone number in them.
package twilioapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"
	video "github.com/twilio/twilio-go/rest/video/v1"
	"go.uber.org/zap"
)

// DefaultTimeout bounds every Twilio request when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Config says how to reach Twilio.
type Config struct {
	AccountSID string // Required: "AC…"
	// AuthToken authenticates REST requests; when empty, APIKey:APISecret do.
	AuthToken string
	// APIKey ("SK…") and APISecret sign Video access tokens (and authenticate
	// REST requests when AuthToken is empty).
	APIKey, APISecret string
	// FromNumber is the default caller ID, and the SMS sender when
	// MessagingServiceSID is empty.
	FromNumber string
	// MessagingServiceSID, when set, sends SMS through that service.
	MessagingServiceSID string
	// APIURL, optional, replaces scheme and host (and prefixes the path with
	// its path) of every request, keeping the Host header (api.twilio.com,
	// video.twilio.com). TWILIO_EDGE and TWILIO_REGION are then ignored.
	APIURL string
	// Timeout bounds each request. Optional, default DefaultTimeout.
	Timeout time.Duration
}

// Client calls Twilio. It is safe for concurrent use.
type Client struct {
	cfg       Config
	log       *zap.Logger
	transport http.RoundTripper
	user      string
	pass      string
	timeout   time.Duration
	// credentialsRefused is set by the first 401/20003, logged once.
	credentialsRefused atomic.Bool
}

var alnum = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// New returns a Client for cfg. It fails when the credentials are missing or
// malformed or APIURL is not an absolute http(s) URL.
func New(cfg Config, log *zap.Logger) (*Client, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Client{cfg: cfg, log: log, timeout: cfg.Timeout}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if !strings.HasPrefix(cfg.AccountSID, "AC") || !alnum.MatchString(cfg.AccountSID) {
		return nil, errors.New(`twilioapi: account SID must look like "AC…"`)
	}
	switch {
	case cfg.AuthToken != "":
		c.user, c.pass = cfg.AccountSID, cfg.AuthToken
	case cfg.APIKey != "" && cfg.APISecret != "":
		c.user, c.pass = cfg.APIKey, cfg.APISecret
	default:
		return nil, errors.New("twilioapi: an auth token or an API key and secret are required")
	}
	if !alnum.MatchString(c.user) || !alnum.MatchString(c.pass) {
		// twilio-go refuses such credentials client-side (21222/21224).
		return nil, errors.New("twilioapi: credentials must be alphanumeric")
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	// net/http keeps 2 idle connections per host by default: with workers
	// calling Twilio concurrently, every call beyond the second closed its
	// connection after use and the next one paid a new TCP and TLS handshake.
	base.MaxIdleConns, base.MaxIdleConnsPerHost = 2*maxIdlePerHost, maxIdlePerHost
	c.transport = base
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("twilioapi: api url %q must be an absolute http(s) URL", cfg.APIURL)
		}
		c.transport = &reroute{base: u, next: base}
	}
	return c, nil
}

// maxIdlePerHost is how many idle connections to each Twilio host a
// process keeps for reuse: more than a worker runs jobs at once
// (worker.concurrency), so concurrent calls find one; unused ones close
// after the transport's idle timeout (90 s).
const maxIdlePerHost = 64

// reroute sends every request to base, keeping the original Host header so
// that one server can tell api.twilio.com from video.twilio.com.
type reroute struct {
	base *url.URL
	next http.RoundTripper
}

func (r *reroute) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	if out.Host == "" {
		out.Host = req.URL.Host
	}
	prefix := strings.TrimSuffix(r.base.Path, "/")
	out.URL.Scheme = r.base.Scheme
	out.URL.Host = r.base.Host
	out.URL.Path = prefix + req.URL.Path
	if req.URL.RawPath != "" {
		out.URL.RawPath = strings.TrimSuffix(r.base.EscapedPath(), "/") + req.URL.RawPath
	}
	return r.next.RoundTrip(out)
}

// callTransport puts the call's context on twilio-go's requests (it builds
// them with context.Background), remembers the last answer, and whether a
// request was ever written out in full: before that, Twilio cannot have it.
type callTransport struct {
	ctx    context.Context
	next   http.RoundTripper
	status int
	body   io.ReadCloser
	sent   atomic.Bool
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := httptrace.WithClientTrace(t.ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				t.sent.Store(true)
			}
		},
	})
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err == nil {
		t.status = resp.StatusCode
		t.body = resp.Body
	}
	return resp, err
}

// services are the twilio-go services bound to one call's context.
type services struct {
	api   *api.ApiService
	video *video.ApiService
}

// do runs f with twilio-go services whose requests carry a context bounded by
// the configured timeout, and classifies any failure.
func (c *Client) do(ctx context.Context, op, sid string, f func(s services) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	t := &callTransport{ctx: ctx, next: c.transport}
	hc := &http.Client{
		Transport: t,
		// twilio-go's own default: never follow redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	tc := &client.Client{Credentials: client.NewCredentials(c.user, c.pass), HTTPClient: hc}
	tc.SetAccountSid(c.cfg.AccountSID)
	rh := client.NewRequestHandler(tc)
	if c.cfg.APIURL != "" {
		rh.Edge, rh.Region = "", ""
	}
	start := time.Now()
	err := f(services{api: api.NewApiService(rh), video: video.NewApiService(rh)})
	if t.body != nil {
		// twilio-go leaves error bodies open.
		_, _ = io.Copy(io.Discard, io.LimitReader(t.body, 1<<16))
		_ = t.body.Close()
	}
	if err == nil {
		c.log.Debug("twilio request", zap.String("op", op), zap.String("sid", sid),
			zap.Int("status", t.status), zap.Duration("took", time.Since(start)))
		return nil
	}
	if ctx.Err() != nil && t.status == 0 {
		err = errors.Join(ctx.Err(), err)
	}
	te := classify(op, err, t.status, t.sent.Load())
	c.log.Debug("twilio request failed", zap.String("op", op), zap.String("sid", sid),
		zap.Int("status", te.Status), zap.Int("code", te.Code), zap.Stringer("class", te.Class),
		zap.Duration("took", time.Since(start)))
	if Credentials(te) && c.credentialsRefused.CompareAndSwap(false, true) {
		// Loud, once: nothing works until an operator fixes the credentials,
		// and every job retrying would otherwise say so again.
		c.log.Error("Twilio refused visitflow's credentials (401/20003): check twilio.account_sid, "+
			"twilio.auth_token and twilio.api_key/api_secret; requests are retried with backoff meanwhile",
			zap.String("op", op), zap.Int("status", te.Status), zap.Int("code", te.Code))
	}
	return te
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// minutes converts d to whole minutes within Twilio's 1..60, rounding up.
func minutes(d time.Duration) int {
	m := int((d + time.Minute - 1) / time.Minute)
	return max(1, min(60, m))
}

// seconds converts d to whole seconds, rounding up.
func seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

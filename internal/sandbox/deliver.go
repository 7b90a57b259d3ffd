package sandbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Event kinds recorded by the emulator.
const (
	KindVideoStatus = "video.status" // Name: StatusCallbackEvent (room-created, participant-connected…)
	KindVoiceStatus = "voice.status" // Name: CallStatus (initiated, ringing, in-progress, completed, busy…)
	KindVoiceTwiML  = "voice.twiml"  // Name: "url", "incoming", "gather", "redirect", "connect-action"; a TwiML fetch
	KindVoiceVerb   = "voice.verb"   // Name: the verb executed (Say, Play, Gather, Connect…); Params: its attributes, "text" and "result"
	KindSMSStatus   = "sms.status"   // Name: MessageStatus (queued, sent, delivered, undelivered, failed)
	KindSMSIncoming = "sms.incoming" // Name: "received"; the inbound SMS webhook
)

// Event is one thing the emulator did for a resource: a callback it delivered
// (or would have, when the resource has no callback URL: URL is then empty), a
// TwiML fetch, or a TwiML verb it executed.
type Event struct {
	Seq    int        `json:"seq"`              // 1-based, in recording order
	At     time.Time  `json:"at"`               // when it was recorded
	Kind   string     `json:"kind"`             // Kind… constant
	Name   string     `json:"name"`             // event name within the kind
	SID    string     `json:"sid"`              // RM…, CA… or SM…
	Method string     `json:"method,omitempty"` // HTTP method used, "" when nothing was sent
	URL    string     `json:"url,omitempty"`    // URL requested (fragment removed; for GET with the parameters)
	Params url.Values `json:"params,omitempty"` // parameters sent
	Status int        `json:"status,omitempty"` // HTTP status our app answered; 0 when not delivered
	Err    string     `json:"error,omitempty"`  // delivery error, if any
	Try    int        `json:"try,omitempty"`    // 1 for the first delivery try, 2… for retries (connection overrides)
	// Retrying: this try failed and another follows.
	Retrying bool `json:"retrying,omitempty"`
}

// Events returns a copy of everything recorded so far, in order.
func (e *Emulator) Events() []Event {
	e.evMu.Lock()
	defer e.evMu.Unlock()
	return append([]Event(nil), e.events...)
}

// WaitFor returns the first recorded event (past or future) for which match
// is true. It fails when ctx ends first.
func (e *Emulator) WaitFor(ctx context.Context, match func(Event) bool) (Event, error) {
	seen := 0
	for {
		e.evMu.Lock()
		evs := e.events[seen:]
		ready := e.evReady
		e.evMu.Unlock()
		for _, ev := range evs {
			if match(ev) {
				return ev, nil
			}
		}
		seen += len(evs)
		select {
		case <-ready:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("sandbox: wait for event: %w", ctx.Err())
		}
	}
}

func (e *Emulator) record(ev Event) {
	e.evMu.Lock()
	ev.Seq = len(e.events) + 1
	if ev.At.IsZero() {
		ev.At = e.now()
	}
	e.events = append(e.events, ev)
	close(e.evReady)
	e.evReady = make(chan struct{})
	e.evMu.Unlock()
	e.log.Debug("sandbox event", zap.String("kind", ev.Kind), zap.String("name", ev.Name),
		zap.String("sid", ev.SID), zap.Int("status", ev.Status))
}

// request is one signed HTTP request the emulator makes as Twilio.
type request struct {
	kind, name, sid string
	method          string // GET or POST; default POST
	url             string // as configured by the app, may carry a #fragment
	params          url.Values
}

// deliver sends req signed like Twilio and records it. A request without URL
// is only recorded. It returns the answer's status and body (at most 64 KiB).
//
// A failed delivery is retried only as the URL's connection overrides say
// (overrides.go), with the same I-Twilio-Idempotency-Token; each try is
// recorded. A status callback may be lost on purpose (Faults).
func (e *Emulator) deliver(req request) (int, []byte, error) {
	ev := Event{Kind: req.kind, Name: req.name, SID: req.sid, Params: req.params}
	if req.url == "" {
		e.record(ev)
		return 0, nil, nil
	}
	method := strings.ToUpper(req.method)
	if method != http.MethodGet {
		method = http.MethodPost
	}
	// The fragment carries connection overrides; it is neither sent nor signed.
	target, fragment, _ := strings.Cut(req.url, "#")
	var sig string
	var form string
	if method == http.MethodGet {
		if len(req.params) > 0 {
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			target += sep + req.params.Encode()
		}
		sig = sign(e.opts.AuthToken, target, nil)
	} else {
		form = req.params.Encode()
		sig = sign(e.opts.AuthToken, target, req.params)
	}
	ev.Method, ev.URL = method, target

	if statusCallbackKind(req.kind) {
		e.mu.Lock()
		drop := e.dropCallbackLocked()
		e.mu.Unlock()
		if drop {
			ev.Err = errDropped.Error()
			e.record(ev)
			return 0, nil, errDropped
		}
	}

	ov := defaultOverrides
	if overridable(req.kind) {
		ov = parseOverrides(fragment)
	}
	idem := newSID("")[:32]
	deadline := time.Now().Add(ov.total)
	for try := 0; ; try++ {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(form)
		}
		timeout := min(ov.read, time.Until(deadline))
		status, respBody, why, err := e.send(method, target, body, sig, idem, timeout)
		tev := ev
		tev.Status = status
		if err != nil {
			tev.Err = err.Error()
		}
		tev.Try = try + 1
		tev.Retrying = err != nil && try < ov.retries && ov.retryOn(why) && time.Until(deadline) > 0
		e.record(tev)
		if !tev.Retrying {
			return status, respBody, err
		}
		if _, werr := e.sleep(e.seconds(retryPauseSeconds)); werr != nil {
			return status, respBody, err
		}
	}
}

// errDropped is the delivery error of a status callback lost on purpose.
var errDropped = errors.New("dropped by fault injection")

func statusCallbackKind(kind string) bool {
	return kind == KindVideoStatus || kind == KindVoiceStatus || kind == KindSMSStatus
}

// sleep waits d unless the emulator closes first.
func (e *Emulator) sleep(d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, nil
	case <-e.ctx.Done():
		return false, errClosed
	}
}

// send makes one HTTP request and classifies a failure for the retry policy.
func (e *Emulator) send(method, target string, body io.Reader, sig, idem string, timeout time.Duration) (int, []byte, failure, error) {
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return 0, nil, failOther, err
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	hr.Header.Set("X-Twilio-Signature", sig)
	hr.Header.Set("I-Twilio-Idempotency-Token", idem)
	hr.Header.Set("User-Agent", "TwilioProxy/1.1")
	hr.Header.Set("Accept", "*/*")
	resp, err := e.client.Do(hr)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial":
			return 0, nil, failConnect, err
		case ctx.Err() != nil && e.ctx.Err() == nil:
			return 0, nil, failRead, err
		}
		return 0, nil, failOther, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, nil, failRead, err
	}
	switch {
	case resp.StatusCode >= 500:
		return resp.StatusCode, b, fail5xx, errors.New(resp.Status)
	case resp.StatusCode >= 400:
		return resp.StatusCode, b, fail4xx, errors.New(resp.Status)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return resp.StatusCode, b, failOther, errors.New(resp.Status)
	}
	return resp.StatusCode, b, failNone, nil
}

// sign computes X-Twilio-Signature as Twilio does: base64(HMAC-SHA1(token,
// url + name1 + value1 + …)) with names in byte order and, for a repeated
// name, each distinct value once in byte order. url is signed exactly as
// given (no fragment, no port games); GET requests pass nil params.
func sign(token, rawURL string, params url.Values) string {
	var b strings.Builder
	b.WriteString(rawURL)
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		vals := append([]string(nil), params[k]...)
		sort.Strings(vals)
		for i, v := range vals {
			if i > 0 && vals[i-1] == v {
				continue
			}
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

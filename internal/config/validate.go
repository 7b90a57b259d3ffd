package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/visitflow/visitflow/internal/redisurl"
)

var (
	e164       = regexp.MustCompile(`^\+[1-9]\d{1,14}$`)
	ivrDigits  = regexp.MustCompile(`^[0-9*#wW]*$`)
	lineName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	languageRe = regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)
)

// Validate checks every key and returns the first problem as one line naming
// the key (`config: visits.join_url: must contain "{token}"`). Outside
// sandbox mode api.token and admin.password are required.
func (c Config) Validate() error {
	v, t := c.Visits, c.Visits.Templates
	checks := []struct {
		key string
		err error
	}{
		{"http.addr", listenAddr(c.HTTP.Addr)},
		{"http.public_base_url", baseURL(c.HTTP.PublicBaseURL)},
		{"http.max_body_bytes", positiveInt(c.HTTP.MaxBodyBytes)},
		{"http.shutdown_timeout", positive(c.HTTP.ShutdownTimeout)},
		{"http.read_header_timeout", positive(c.HTTP.ReadHeaderTimeout)},
		{"http.write_timeout", positive(c.HTTP.WriteTimeout)},
		{"redis.url", redisURL(c.Redis.URL)},
		{"twilio.account_sid", sid(c.Twilio.AccountSID, "AC")},
		{"twilio.subaccount_tokens", subaccountTokens(c.Twilio.SubaccountTokens)},
		{"twilio.api_key", sid(c.Twilio.APIKey, "SK")},
		{"twilio.api_secret", pair(c.Twilio.APISecret, c.Twilio.APIKey, "twilio.api_key")},
		{"twilio.api_key", pair(c.Twilio.APIKey, c.Twilio.APISecret, "twilio.api_secret")},
		{"twilio.from_number", phone(c.Twilio.FromNumber)},
		{"twilio.messaging_service_sid", sid(c.Twilio.MessagingServiceSID, "MG")},
		{"twilio.api_url", optional(c.Twilio.APIURL, absHTTPURL)},
		{"twilio.request_timeout", positive(c.Twilio.RequestTimeout)},
		{"twilio.reconcile_interval", notNegative(c.Twilio.ReconcileInterval)},
		{"twilio.reconcile_batch", positiveInt(c.Twilio.ReconcileBatch)},
		{"api.token", requiredOutsideSandbox(c.API.Token, c.Sandbox())},
		{"admin.username", required(c.Admin.Username)},
		{"admin.password", requiredOutsideSandbox(c.Admin.Password, c.Sandbox())},
		{"visits.reminder_offsets", offsets(v.ReminderOffsets)},
		{"visits.no_show_after", positive(v.NoShowAfter)},
		{"visits.provider_late_after", positive(v.ProviderLateAfter)},
		{"visits.followup_after", positive(v.FollowupAfter)},
		{"visits.join_url", optional(v.JoinURL, joinURL)},
		{"visits.room_lead", positive(v.RoomLead)},
		{"visits.room_lead", roomWindow(v.RoomLead, v.NoShowAfter)},
		{"visits.access_window", positive(v.AccessWindow)},
		{"visits.dial_in_pin_digits", intBetween(v.DialInPINDigits, 6, 12)},
		{"visits.dial_in_tries_per_call", positiveInt(int64(v.DialInTriesPerCall))},
		{"visits.dial_in_caller_failure_limit", positiveInt(int64(v.DialInCallerFailureLimit))},
		{"visits.dial_in_caller_failure_window", positive(v.DialInCallerFailureWindow)},
		{"visits.dial_in_failure_budget", positiveInt(int64(v.DialInFailureBudget))},
		{"visits.dial_in_failure_budget_window", positive(v.DialInFailureBudgetWindow)},
		{"visits.dial_in_limited_hold", between(v.DialInLimitedHold, time.Second, 5*time.Minute)},
		{"visits.dial_in_limited_tries_per_call", intBetween(v.DialInLimitedTriesPerCall, 1, v.DialInTriesPerCall)},
		{"visits.empty_room_timeout", wholeMinutes(v.EmptyRoomTimeout, 1, 60)},
		{"visits.unused_room_timeout", wholeMinutes(v.UnusedRoomTimeout, 1, 60)},
		{"visits.retention", positive(v.Retention)},
		{"visits.schedule_horizon", positive(v.ScheduleHorizon)},
		{"visits.templates.reminder", tmpl(t.Reminder)},
		{"visits.templates.starting_soon", tmpl(t.StartingSoon)},
		{"visits.templates.provider_late", tmpl(t.ProviderLate)},
		{"visits.templates.patient_late", tmpl(t.PatientLate)},
		{"visits.templates.followup", tmpl(t.Followup)},
		{"visits.templates.cancelled", tmpl(t.Cancelled)},
		{"visits.templates.invite", tmpl(t.Invite)},
		{"visits.templates.interpreter_failed", tmpl(t.InterpreterFailed)},
		{"visits.templates.patient_waiting", tmpl(t.PatientWaiting)},
		{"interpreter.max_attempts", positiveInt(int64(c.Interpreter.MaxAttempts))},
		{"interpreter.retry_backoff", positive(c.Interpreter.RetryBackoff)},
		{"interpreter.ring_timeout", between(c.Interpreter.RingTimeout, 5*time.Second, 600*time.Second)},
		{"log.level", oneOf(c.Log.Level, "debug", "info", "warn", "error")},
		{"log.format", oneOf(c.Log.Format, "console", "json")},
		{"worker.concurrency", positiveInt(int64(c.Worker.Concurrency))},
		{"redis.namespace", optional(c.Redis.Namespace, namespace)},
		{"api.tokens", apiTokens(c.API)},
		{"board.timezone", optional(c.Board.Timezone, timezone)},
		{"board.page_size", intBetween(c.Board.PageSize, 1, 5000)},
		{"audit.retention", atLeast(c.Audit.Retention, 24*time.Hour)},
	}
	for _, ch := range checks {
		if ch.err != nil {
			return fmt.Errorf("config: %s: %w", ch.key, ch.err)
		}
	}
	if err := c.Interpreter.validateLines(); err != nil {
		return err
	}
	if !c.Sandbox() {
		return c.validateLive()
	}
	return nil
}

// testCredentialNumber is Twilio's test-credential range +1500555xxxx,
// which only test credentials can use (and they cannot use Video).
var testCredentialNumber = regexp.MustCompile(`^\+1500555\d{4}$`)

// validateLive refuses, with real Twilio credentials, the settings that
// only make sense against the sandbox (contract §3).
func (c Config) validateLive() error {
	const live = "outside sandbox mode (twilio.account_sid and twilio.auth_token are set)"
	if u, err := url.Parse(c.HTTP.PublicBaseURL); err == nil && loopbackHost(u.Hostname()) {
		return fmt.Errorf("config: http.public_base_url: %s Twilio must reach it and signs the URL it uses: a localhost or loopback address %q fails every signature check", live, u.Hostname())
	}
	if testCredentialNumber.MatchString(c.Twilio.FromNumber) && c.Twilio.MessagingServiceSID == "" {
		return fmt.Errorf("config: twilio.from_number: %s %s is in Twilio's test-credential range +1500555xxxx, which live credentials cannot send from: set a number of the account or twilio.messaging_service_sid", live, c.Twilio.FromNumber)
	}
	if c.Twilio.APIKey == "" {
		return fmt.Errorf("config: twilio.api_key: required %s: Video access tokens are signed with an API key", live)
	}
	if c.Twilio.APISecret == "" {
		return fmt.Errorf("config: twilio.api_secret: required %s: Video access tokens are signed with it", live)
	}
	return nil
}

// loopbackHost reports whether host can only be this machine.
func loopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

func (in Interpreter) validateLines() error {
	names := make([]string, 0, len(in.Lines))
	for name := range in.Lines {
		names = append(names, name)
	}
	sort.Strings(names)
	byEnv := map[string]string{}
	for _, name := range names {
		key := "interpreter.lines." + name
		if !lineName.MatchString(name) {
			return fmt.Errorf("config: %s: invalid line name (want lower-case letters, digits, \"-\" and \"_\", at most 64)", key)
		}
		// "voyce-es" and "voyce_es" would share one environment variable.
		if other, ok := byEnv[envName(key)]; ok {
			return fmt.Errorf("config: %s: clashes with interpreter.lines.%s (both are %s_…)", key, other, envName(key))
		}
		byEnv[envName(key)] = name
		l := in.Lines[name]
		if err := phone(l.Phone); err != nil {
			return fmt.Errorf("config: %s.phone: %w", key, err)
		}
		if len(l.IVR) > 32 || !ivrDigits.MatchString(l.IVR) {
			return fmt.Errorf("config: %s.ivr: invalid DTMF path %q (want at most 32 of 0-9 * # w W)", key, l.IVR)
		}
		for _, lang := range l.Languages {
			if !languageRe.MatchString(lang) {
				return fmt.Errorf("config: %s.languages: invalid language tag %q (want e.g. \"es\" or \"pt-BR\")", key, lang)
			}
		}
	}
	return nil
}

func required(s string) error {
	if s == "" {
		return fmt.Errorf("required")
	}
	return nil
}

func requiredOutsideSandbox(s string, sandbox bool) error {
	if s == "" && !sandbox {
		return fmt.Errorf("required outside sandbox mode (twilio.account_sid and twilio.auth_token are set)")
	}
	return nil
}

func optional(s string, check func(string) error) error {
	if s == "" {
		return nil
	}
	return check(s)
}

func pair(s, other, otherKey string) error {
	if s == "" && other != "" {
		return fmt.Errorf("required when %s is set", otherKey)
	}
	return nil
}

func positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be greater than 0, got %s", formatDuration(d))
	}
	return nil
}

func notNegative(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("must not be negative (0 turns it off), got %s", formatDuration(d))
	}
	return nil
}

func positiveInt(n int64) error {
	if n <= 0 {
		return fmt.Errorf("must be greater than 0, got %d", n)
	}
	return nil
}

func intBetween(n, lo, hi int) error {
	if n < lo || n > hi {
		return fmt.Errorf("must be between %d and %d, got %d", lo, hi, n)
	}
	return nil
}

func between(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("must be between %s and %s, got %s", formatDuration(lo), formatDuration(hi), formatDuration(d))
	}
	return nil
}

// wholeMinutes checks a Twilio room timeout, which Twilio takes in minutes.
func wholeMinutes(d time.Duration, lo, hi int) error {
	if d%time.Minute != 0 || d < time.Duration(lo)*time.Minute || d > time.Duration(hi)*time.Minute {
		return fmt.Errorf("must be whole minutes from %dm to %dm, got %s", lo, hi, formatDuration(d))
	}
	return nil
}

// roomWindow keeps the room's life within Twilio's reach: a room created
// room_lead before the visit must be able to stay open unused until the
// no-show deadline, and Twilio closes an unused room after 60 minutes at
// most.
func roomWindow(lead, noShow time.Duration) error {
	if lead+noShow > 60*time.Minute {
		return fmt.Errorf("room_lead + no_show_after must be at most 60m (Twilio closes an unused room after 60 minutes at most), got %s + %s",
			formatDuration(lead), formatDuration(noShow))
	}
	return nil
}

func offsets(ds []time.Duration) error {
	seen := map[time.Duration]bool{}
	for _, d := range ds {
		if d <= 0 {
			return fmt.Errorf("offsets must be greater than 0, got %s", formatDuration(d))
		}
		if seen[d] {
			return fmt.Errorf("offset %s listed twice", formatDuration(d))
		}
		seen[d] = true
	}
	return nil
}

func oneOf(s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("invalid value %q (want one of %s)", s, strings.Join(allowed, ", "))
}

func phone(s string) error {
	if !e164.MatchString(s) {
		return fmt.Errorf("invalid phone number %q (want E.164, e.g. +15551230001)", s)
	}
	return nil
}

func sid(s, prefix string) error {
	if s != "" && !strings.HasPrefix(s, prefix) {
		return fmt.Errorf("must start with %q", prefix)
	}
	return nil
}

func listenAddr(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("invalid listen address %q (want host:port or :port)", s)
	}
	return nil
}

func absHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid URL %q (want an absolute http:// or https:// URL)", s)
	}
	if u.Fragment != "" {
		return fmt.Errorf("invalid URL %q: no fragment allowed", s)
	}
	return nil
}

// baseURL is an absolute URL that paths are appended to; a trailing slash
// would double the slash and break Twilio signature validation.
func baseURL(s string) error {
	if err := absHTTPURL(s); err != nil {
		return err
	}
	if strings.HasSuffix(s, "/") || strings.ContainsAny(s, "?#") {
		return fmt.Errorf("invalid base URL %q (want no trailing slash, query or fragment)", s)
	}
	return nil
}

func joinURL(s string) error {
	if err := absHTTPURL(strings.ReplaceAll(s, "{token}", "t")); err != nil {
		return err
	}
	if !strings.Contains(s, "{token}") {
		return fmt.Errorf("must contain \"{token}\", got %q", s)
	}
	return nil
}

// redisURL checks the form only; redisx.Connect parses the rest when it
// connects. Secrets never appear in the message.
func redisURL(s string) error {
	if s == "" {
		return nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok:
		return fmt.Errorf("invalid Redis URL %s (want redis://, rediss://, redis-cluster:// or redis-sentinel://)", redisurl.Mask(s))
	case scheme != "redis" && scheme != "rediss" && scheme != "redis-cluster" && scheme != "redis-sentinel":
		return fmt.Errorf("unsupported scheme %q (want redis, rediss, redis-cluster or redis-sentinel)", scheme)
	case scheme != "redis" && scheme != "rediss" && strings.Trim(rest, "/") == "":
		return fmt.Errorf("invalid Redis URL %s: no hosts", redisurl.Mask(s))
	}
	return nil
}

func tmpl(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("required (an SMS text)")
	}
	if _, err := template.New("").Parse(s); err != nil {
		return fmt.Errorf("invalid template: %w", err)
	}
	return nil
}

// subaccountTokens: every name an AccountSid, every token set.
func subaccountTokens(m map[string]string) error {
	for _, name := range sortedKeys(m) {
		if !strings.HasPrefix(name, "AC") || len(name) < 3 {
			return fmt.Errorf("%q is not an AccountSid (AC…)", name)
		}
		if m[name] == "" {
			return fmt.Errorf("%s has no token", name)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

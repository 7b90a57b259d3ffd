// Package config owns visitflow's configuration (contract §3): the Config
// type with its defaults, Load, which reads config.yaml and applies
// environment overrides, Validate, and String, which prints the effective
// configuration with every secret masked.
//
// Every key can be overridden by an environment variable named VISITFLOW_
// followed by the key path upper-cased with "." replaced by "_"
// (visits.followup_after → VISITFLOW_VISITS_FOLLOWUP_AFTER). The names are
// derived from the yaml tags by reflection, so a new field gets its variable
// without further code. List values are comma-separated
// (VISITFLOW_VISITS_REMINDER_OFFSETS=24h,1h); a list of objects takes each
// object in its one-line form (VISITFLOW_API_TOKENS=ehr:tok1,cron:tok2 for
// api.tokens' {name, token}) and replaces the file's list. Interpreter lines are a map:
// the fields of a line that exists in the file can be overridden with
// VISITFLOW_INTERPRETER_LINES_<NAME>_PHONE (…_IVR, …_LANGUAGES, …_AMD), NAME being
// the line's key upper-cased with "-" replaced by "_"; a line cannot be
// created from the environment alone. An empty variable counts as unset, so
// the environment cannot clear a value the file sets. The standard
// TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_API_KEY and TWILIO_API_SECRET
// apply too; the VISITFLOW_ variable wins when both are set.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Start from Default (or Load) rather than
// the zero value: several fields have non-zero defaults.
type Config struct {
	HTTP        HTTP        `yaml:"http"`
	Redis       Redis       `yaml:"redis"`
	Twilio      Twilio      `yaml:"twilio"`
	API         API         `yaml:"api"`
	Admin       Admin       `yaml:"admin"`
	Visits      Visits      `yaml:"visits"`
	Interpreter Interpreter `yaml:"interpreter"`
	Log         Log         `yaml:"log"`
	Worker      Worker      `yaml:"worker"`
	Board       Board       `yaml:"board"`
	Audit       Audit       `yaml:"audit"`
}

// HTTP configures the listener that serves webhooks, the API and the admin pages.
type HTTP struct {
	// Addr is the listen address. Optional, default ":8080".
	Addr string `yaml:"addr"`
	// PublicBaseURL is the absolute http(s) URL, without a trailing slash,
	// under which Twilio reaches us. Twilio signatures are validated against
	// it (never against the request's Host) and callback URLs are built from
	// it. Optional, default "http://localhost:8080".
	PublicBaseURL string `yaml:"public_base_url"`
	// MaxBodyBytes is the largest request body accepted; larger ones get 413.
	// Optional, default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ShutdownTimeout bounds the graceful shutdown: in-flight requests and
	// jobs get this long to finish. Optional, default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout bounds reading a request's headers: a client that
	// trickles them is cut off. Optional, default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// WriteTimeout bounds a whole request, from the end of its headers to
	// the last byte of the answer: a client that never reads the answer is
	// cut off, freeing its goroutine and descriptor. It must cover the
	// largest batch create. Optional, default 60s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// Redis says where state and queues live.
type Redis struct {
	// URL is redis://[user:pass@]host:port/db, rediss://…,
	// redis-cluster://h1:p1,h2:p2 or redis-sentinel://[pass@]h1:p1,h2:p2/master/db.
	// Optional, default empty: an embedded in-memory Redis, for development
	// only (everything is lost when the process exits).
	URL string `yaml:"url" secret:"url"`
	// Namespace prefixes every visitflow key (ns:vf:…) and every Asynq
	// queue name (ns:critical, …), so two deployments can share one Redis
	// or Cluster. Optional, default empty (no prefix); letters, digits,
	// "-", "_" and "." only, at most 64.
	Namespace string `yaml:"namespace"`
}

// Twilio holds the credentials and endpoints for Twilio's REST API. Without
// AccountSID or AuthToken visitflow runs in sandbox mode (contract §8).
type Twilio struct {
	// AccountSID is the account (AC…). Optional; empty means sandbox mode.
	AccountSID string `yaml:"account_sid"`
	// AuthToken signs webhooks and authenticates REST calls. Optional;
	// empty means sandbox mode.
	AuthToken string `yaml:"auth_token" secret:"true"`
	// SecondaryAuthToken is a second token whose webhook signatures are
	// accepted too, for rotating the auth token without a window in which
	// every callback fails. Optional.
	SecondaryAuthToken string `yaml:"secondary_auth_token" secret:"true"`
	// SubaccountTokens maps a sub-account's AccountSid (AC…) to its auth
	// token: callbacks carrying that AccountSid are validated with it (a
	// sub-account's resources are signed with the sub-account's token).
	// Optional. Environment: AC…=token pairs separated by commas.
	SubaccountTokens map[string]string `yaml:"subaccount_tokens" secret:"true"`
	// APIKey (SK…) and APISecret sign Video access tokens. Optional; set both or neither.
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret" secret:"true"`
	// FromNumber is the E.164 caller ID and SMS sender. Optional, default
	// "+15005550006" (Twilio's magic test number).
	FromNumber string `yaml:"from_number"`
	// MessagingServiceSID (MG…), when set, sends SMS through that
	// Messaging Service instead of FromNumber. Optional.
	MessagingServiceSID string `yaml:"messaging_service_sid"`
	// APIURL, when set, replaces https://*.twilio.com as the base URL of
	// every REST request (the original Host header is kept): for the
	// sandbox emulator, tests and proxies. Optional, absolute http(s) URL.
	APIURL string `yaml:"api_url"`
	// RequestTimeout bounds one REST request. Optional, default 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// ReconcileInterval is how often open visits whose callbacks went quiet
	// (and their live phone legs) are read back from Twilio's REST API.
	// Optional, default 2m; 0 turns reconciliation off.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
	// ReconcileBatch caps the visits one reconciliation run reads (the
	// rest wait for the next run, longest overdue first). Optional, default 200.
	ReconcileBatch int64 `yaml:"reconcile_batch"`
}

// API configures the /v1 scheduling API.
type API struct {
	// Token is the bearer token for /v1. Required outside sandbox mode; in
	// sandbox mode an empty token is replaced by a random one at start.
	Token string `yaml:"token" secret:"true"`
	// Tokens are further bearer tokens, each with a name that the audit
	// trail records as who made a request (Token is the unnamed default,
	// recorded as "default"). In the environment, VISITFLOW_API_TOKENS is a
	// comma-separated list of name:token pairs. Optional, default none.
	Tokens []APIToken `yaml:"tokens"`
}

// APIToken is one named bearer token of api.tokens.
type APIToken struct {
	// Name says whose token it is ("ehr", "cron"); letters, digits, "-",
	// "_" and "." only. Required.
	Name string `yaml:"name"`
	// Token is the bearer secret. Required.
	Token string `yaml:"token" secret:"true"`
}

// UnmarshalText reads the environment's form of a token, "name:token".
func (t *APIToken) UnmarshalText(b []byte) error {
	name, token, ok := strings.Cut(string(b), ":")
	if !ok {
		return fmt.Errorf("want name:token, got a value without \":\"")
	}
	t.Name, t.Token = strings.TrimSpace(name), strings.TrimSpace(token)
	return nil
}

// Admin configures basic auth and behaviour of /admin.
type Admin struct {
	// Username for /admin basic auth. Optional, default "admin".
	Username string `yaml:"username"`
	// Password for /admin basic auth. Required outside sandbox mode; in
	// sandbox mode an empty password is replaced by a random one at start.
	Password string `yaml:"password" secret:"true"`
	// ReadOnly makes the Asynq dashboard read-only. Optional, default true.
	ReadOnly bool `yaml:"read_only"`
}

// Visits holds the timing rules and message texts of a visit.
type Visits struct {
	// ReminderOffsets: an SMS reminder is sent this long before
	// scheduled_at, once per offset; past offsets are skipped. Optional,
	// default [24h, 1h, 10m]; an empty list sends no reminders.
	ReminderOffsets []time.Duration `yaml:"reminder_offsets"`
	// NoShowAfter: a patient who has not joined this long after
	// scheduled_at is a no-show. Optional, default 15m.
	NoShowAfter time.Duration `yaml:"no_show_after"`
	// ProviderLateAfter: a patient waiting this long past
	// max(joined, scheduled_at) without the provider triggers provider-late
	// handling. Optional, default 5m.
	ProviderLateAfter time.Duration `yaml:"provider_late_after"`
	// FollowupAfter: the follow-up SMS goes this long after completion.
	// Optional, default 10m.
	FollowupAfter time.Duration `yaml:"followup_after"`
	// QuietHours is a local-time window ("21:00-08:00") in which no reminder
	// SMS is sent; a reminder due inside it moves earlier. Optional, default
	// "21:00-08:00"; "" disables it.
	QuietHours QuietHours `yaml:"quiet_hours"`
	// JoinURL is the link template sent to patients and guests; "{token}"
	// is replaced by the invite token. Optional, default empty: the page
	// visitflow serves, <http.public_base_url>/join/{token} (see
	// Config.JoinURLTemplate); when set (a clinic's portal) it must contain
	// "{token}".
	JoinURL string `yaml:"join_url"`
	// RoomLead: the visit's Group Room is created this long before
	// scheduled_at; earlier, tokens are issued without creating it. Optional,
	// default 30m; room_lead + no_show_after at most 60m (Twilio closes a
	// room nobody joined after 60 minutes at most).
	RoomLead time.Duration `yaml:"room_lead"`
	// AccessWindow: Video access tokens and guest invites of a visit stop
	// working this long after scheduled_at (a token asked for later still
	// lives 15 minutes). Dial-in opens room_lead before scheduled_at.
	// Optional, default 2h.
	AccessWindow time.Duration `yaml:"access_window"`
	// DialInPINDigits is the length of a visit's dial-in PIN; PINs are
	// unique among visits whose windows overlap and valid from room_lead
	// before scheduled_at until the visit ends. Optional, default 9; 6 to 12.
	DialInPINDigits int `yaml:"dial_in_pin_digits"`
	// DialInTriesPerCall is how many PINs one call may enter. Optional,
	// default 3.
	DialInTriesPerCall int `yaml:"dial_in_tries_per_call"`
	// DialInCallerFailureLimit wrong PINs from one caller ID (kept as a
	// keyed hash) within DialInCallerFailureWindow put that caller on the
	// limited path (see DialInLimitedHold). Optional, default 6 and 1h.
	DialInCallerFailureLimit  int           `yaml:"dial_in_caller_failure_limit"`
	DialInCallerFailureWindow time.Duration `yaml:"dial_in_caller_failure_window"`
	// DialInFailureBudget is the number of wrong PINs across all callers
	// per DialInFailureBudgetWindow; beyond it every caller whose caller ID
	// is not a patient phone of an open visit takes the limited path.
	// Caller IDs are spoofable, so this is what bounds guessing. Optional,
	// default 60 per 1h.
	DialInFailureBudget       int           `yaml:"dial_in_failure_budget"`
	DialInFailureBudgetWindow time.Duration `yaml:"dial_in_failure_budget_window"`
	// DialInLimitedHold and DialInLimitedTriesPerCall are the limited
	// path: the caller holds this long before the PIN prompt and may enter
	// this many PINs. A right PIN still bridges at once. Optional, default
	// 30s and 1.
	DialInLimitedHold         time.Duration `yaml:"dial_in_limited_hold"`
	DialInLimitedTriesPerCall int           `yaml:"dial_in_limited_tries_per_call"`
	// EmptyRoomTimeout: Twilio closes a room this long after the last
	// participant left. Optional, default 5m; whole minutes from 1m to 60m.
	EmptyRoomTimeout time.Duration `yaml:"empty_room_timeout"`
	// UnusedRoomTimeout: Twilio closes a room nobody joined this long after
	// its creation. Optional, default 5m; whole minutes from 1m to 60m.
	UnusedRoomTimeout time.Duration `yaml:"unused_room_timeout"`
	// Retention: finished visits (completed, no-show, cancelled) are purged
	// this long after they finished. Optional, default 720h (30 days).
	Retention time.Duration `yaml:"retention"`
	// ScheduleHorizon: scheduled_at may be at most this far in the future;
	// later times are refused (400 naming scheduled_at). Optional, default
	// 17520h (2 years).
	ScheduleHorizon time.Duration `yaml:"schedule_horizon"`
	// CancelSMS sends the patient the cancelled template when a visit is
	// cancelled. Optional, default false.
	CancelSMS bool `yaml:"cancel_sms"`
	// OptOutSecret keys the HMAC-SHA256 under which opted-out phone numbers
	// are stored (never the number itself). Optional; empty derives the key
	// from twilio.auth_token, so rotating the auth token forgets opt-outs
	// recorded under it: set this explicitly in production.
	OptOutSecret string `yaml:"optout_secret" secret:"true"`
	// Templates are the SMS texts.
	Templates Templates `yaml:"templates"`
}

// Templates are the SMS texts, as text/template strings. The default texts
// use these fields of the data they are executed with: .Provider and
// .Patient (display names), .When (the visit's local time, formatted),
// .JoinURL, .Line (interpreter line name), .Attempts, .DialIn (the number
// to call) and .PIN (the dial-in PIN in groups). Every template is
// Optional, defaulting to the text in Default, and must parse.
type Templates struct {
	// Reminder is sent to the patient at each reminder offset.
	Reminder string `yaml:"reminder"`
	// StartingSoon is sent to the patient shortly before the visit (the
	// last reminder before scheduled_at).
	StartingSoon string `yaml:"starting_soon"`
	// ProviderLate is sent to the provider when the patient has waited
	// longer than provider_late_after.
	ProviderLate string `yaml:"provider_late"`
	// PatientLate is sent to the waiting patient at the same moment: the
	// provider is running late.
	PatientLate string `yaml:"patient_late"`
	// Followup is sent to the patient followup_after completion.
	Followup string `yaml:"followup"`
	// Cancelled is sent to the patient when the visit is cancelled.
	Cancelled string `yaml:"cancelled"`
	// Invite is sent to a guest or interpreter invited to the visit.
	Invite string `yaml:"invite"`
	// InterpreterFailed is sent to the provider when the interpreter line
	// could not be reached after max_attempts.
	InterpreterFailed string `yaml:"interpreter_failed"`
	// PatientWaiting is sent to the provider when the patient enters the
	// waiting room (once per waiting spell); .ByPhone is true when the
	// patient is in by the phone dial-in leg.
	PatientWaiting string `yaml:"patient_waiting"`
}

// Interpreter configures the interpreter lines visitflow dials and bridges
// into visits.
type Interpreter struct {
	// Lines maps a line name (lower-case letters, digits, "-" and "_"; used
	// in the API as {"line": name}) to its phone number and phone tree.
	// Optional, default none.
	Lines map[string]InterpreterLine `yaml:"lines"`
	// MaxAttempts is how often a busy, unanswered or failed line is dialled
	// before the provider is told. Optional, default 3.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the wait before the second attempt; later waits may
	// grow from it. Optional, default 30s.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// RingTimeout is how long one attempt rings before it counts as
	// no-answer. Optional, default 30s; 5s to 600s (Twilio's limits).
	RingTimeout time.Duration `yaml:"ring_timeout"`
}

// InterpreterLine is one interpreter service's phone line.
type InterpreterLine struct {
	// Phone is the E.164 number to dial. Required.
	Phone string `yaml:"phone"`
	// IVR is the DTMF path through the line's phone tree, played once the
	// call is answered: digits, "*", "#", "w" (0.5 s pause), "W" (1 s
	// pause); at most 32 characters. Optional.
	IVR string `yaml:"ivr"`
	// Languages the line serves, as BCP 47 tags ("es", "pt-BR"). Optional.
	Languages []string `yaml:"languages"`
	// AMD turns on Twilio's answering-machine detection for calls to the
	// line: a call a machine answers is hung up and retried. Optional,
	// default false, and leave it off for a line that answers with an IVR
	// menu: Twilio judges long recorded speech a machine, so the menu would
	// be hung up on every time (and detection delays the call's TwiML).
	AMD bool `yaml:"amd"`
}

// Log configures the process log.
type Log struct {
	// Level is debug, info, warn or error. Optional, default "info".
	Level string `yaml:"level"`
	// Format is "console" (human-readable) or "json". Optional, default "console".
	Format string `yaml:"format"`
}

// Worker configures the Asynq job workers.
type Worker struct {
	// Concurrency is the number of jobs one worker process runs at once.
	// Optional, default 10.
	Concurrency int `yaml:"concurrency"`
}

// Board configures the visit board at /admin/visits.
type Board struct {
	// Timezone is the IANA zone ("America/New_York") whose calendar day
	// the board shows and whose clock its times are in. Optional, default
	// empty: the server's local zone.
	Timezone string `yaml:"timezone"`
	// PageSize is how many visits one page of the day's board lists; a
	// busier day continues on further pages. Optional, default 200.
	PageSize int `yaml:"page_size"`
}

// Location returns the board's time zone (Validate checked it loads).
func (b Board) Location() *time.Location {
	if b.Timezone == "" {
		return time.Local
	}
	loc, err := time.LoadLocation(b.Timezone)
	if err != nil {
		return time.Local
	}
	return loc
}

// Audit configures the audit trail of who read or changed which visit.
type Audit struct {
	// Retention is how long audit records are kept; whole days older than
	// this are trimmed by the hourly maintenance. Optional, default 52560h
	// (6 years, HIPAA's documentation retention).
	Retention time.Duration `yaml:"retention"`
}

// Default returns the configuration used when no file and no environment
// variable say otherwise. config.yaml at the repository root documents
// exactly these values (a test keeps them equal).
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:              ":8080",
			PublicBaseURL:     "http://localhost:8080",
			MaxBodyBytes:      65536,
			ShutdownTimeout:   15 * time.Second,
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      60 * time.Second,
		},
		Twilio: Twilio{
			FromNumber:        "+15005550006",
			RequestTimeout:    10 * time.Second,
			ReconcileInterval: 2 * time.Minute,
			ReconcileBatch:    200,
		},
		Admin: Admin{Username: "admin", ReadOnly: true},
		Visits: Visits{
			ReminderOffsets:   []time.Duration{24 * time.Hour, time.Hour, 10 * time.Minute},
			NoShowAfter:       15 * time.Minute,
			ProviderLateAfter: 5 * time.Minute,
			FollowupAfter:     10 * time.Minute,
			QuietHours:        QuietHours{Start: 21 * time.Hour, End: 8 * time.Hour, Set: true},
			JoinURL:           "",
			RoomLead:          30 * time.Minute,
			AccessWindow:      2 * time.Hour,

			DialInPINDigits:           9,
			DialInTriesPerCall:        3,
			DialInCallerFailureLimit:  6,
			DialInCallerFailureWindow: time.Hour,
			DialInFailureBudget:       60,
			DialInFailureBudgetWindow: time.Hour,
			DialInLimitedHold:         30 * time.Second,
			DialInLimitedTriesPerCall: 1,

			EmptyRoomTimeout:  5 * time.Minute,
			UnusedRoomTimeout: 5 * time.Minute,
			Retention:         720 * time.Hour,
			ScheduleHorizon:   2 * 365 * 24 * time.Hour,
			CancelSMS:         false,
			OptOutSecret:      "",
			Templates: Templates{
				Reminder:          "Reminder: your visit with {{.Provider}} is on {{.When}}. Join: {{.JoinURL}} By phone: call {{.DialIn}}, PIN {{.PIN}}, then #. Reply C to confirm.",
				StartingSoon:      "Your visit with {{.Provider}} starts soon. Join: {{.JoinURL}}",
				ProviderLate:      "{{.Patient}} is waiting for your video visit. Join: {{.JoinURL}}",
				PatientLate:       "{{.Provider}} is running a few minutes late. Please stay in the waiting room: {{.JoinURL}}",
				Followup:          "Thank you for your visit with {{.Provider}}. Reply to this message if you have questions.",
				Cancelled:         "Your visit with {{.Provider}} on {{.When}} has been cancelled.",
				Invite:            "You are invited to a video visit with {{.Provider}} on {{.When}}. Join: {{.JoinURL}}",
				InterpreterFailed: "The {{.Line}} interpreter line could not be reached after {{.Attempts}} attempts.",
				PatientWaiting:    "{{.Patient}} is in the waiting room{{if .ByPhone}} (joined by phone){{end}}. Join: {{.JoinURL}}",
			},
		},
		Interpreter: Interpreter{
			Lines:        map[string]InterpreterLine{},
			MaxAttempts:  3,
			RetryBackoff: 30 * time.Second,
			RingTimeout:  30 * time.Second,
		},
		Log:    Log{Level: "info", Format: "console"},
		Worker: Worker{Concurrency: 10},
		Board:  Board{PageSize: 200},
		Audit:  Audit{Retention: 6 * 365 * 24 * time.Hour},
	}
}

// JoinURLTemplate is the join link template: visits.join_url, or when it
// is empty the page visitflow serves itself,
// <http.public_base_url>/join/{token}, so links work wherever visitflow is
// reachable.
func (c Config) JoinURLTemplate() string {
	if c.Visits.JoinURL != "" {
		return c.Visits.JoinURL
	}
	return strings.TrimRight(c.HTTP.PublicBaseURL, "/") + "/join/{token}"
}

// Sandbox reports whether visitflow runs against its built-in Twilio
// emulator: true when twilio.account_sid or twilio.auth_token is empty.
func (c Config) Sandbox() bool {
	return c.Twilio.AccountSID == "" || c.Twilio.AuthToken == ""
}

// Load returns the effective configuration: Default, overlaid with the YAML
// file at path, then with the environment (read through getenv; nil means
// an empty environment), then validated. An empty path means
// getenv("VISITFLOW_CONFIG"), else ./config.yaml when it exists, else no
// file. Keys missing from the file keep their defaults; a key set to null
// (or nothing) is cleared.
//
// Load fails with one line naming the key, and where it came from, for an
// unknown key, a value that does not parse (`config: visits.no_show_after:
// invalid duration "15x" (config.yaml:42)`) or one that Validate rejects;
// and when an explicitly named file cannot be read.
func Load(path string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg := Default()
	if path == "" {
		path = getenv("VISITFLOW_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat("config.yaml"); err == nil {
			path = "config.yaml"
		}
	}
	if path != "" {
		if err := loadFile(&cfg, path); err != nil {
			return Config{}, err
		}
	}
	if err := applyEnv(&cfg, getenv); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func loadFile(cfg *Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("config: read %s: file does not exist", path)
		}
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil // an empty file: all defaults
	case err != nil:
		return fmt.Errorf("config: parse %s: %w", path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: parse %s: want one YAML document", path)
	}
	return decodeNode(&doc, cfg, path)
}

package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults used when Options leaves a field empty. DefaultAccountSID and
// DefaultAuthToken are also the sandbox-mode server's Twilio credentials:
// well known on purpose, so `visitflow sign`, `load` and `simulate` sign like
// the emulator without being told. They open nothing outside the emulator.
const (
	DefaultAccountSID  = "AC00000000000000000000000000000000"
	DefaultAuthToken   = "sandboxauthtoken"
	DefaultPhoneNumber = "+15005550006"
)

// Options configures an Emulator. Every field is optional.
type Options struct {
	// AccountSID and AuthToken are the sandbox credentials. The REST API
	// requires HTTP basic auth AccountSID:AuthToken (or APIKeySID:APIKeySecret
	// when those are set); callbacks are signed with AuthToken.
	// Defaults: DefaultAccountSID, DefaultAuthToken.
	AccountSID, AuthToken string
	// APIKeySID ("SK…") and APIKeySecret, when both set, are accepted as REST
	// credentials too, as Twilio accepts API keys.
	APIKeySID, APIKeySecret string

	// PhoneNumber is "our" Twilio number: the To of simulated inbound calls and
	// SMS, and the sender of SMS sent through a Messaging Service.
	// Default DefaultPhoneNumber.
	PhoneNumber string
	// IncomingVoiceURL receives inbound calls (POST /calls/incoming), like the
	// Voice URL configured on a Twilio number.
	IncomingVoiceURL string
	// IncomingVoiceStatusURL, optional, receives the completed status callback
	// of inbound calls, like a number's status callback.
	IncomingVoiceStatusURL string
	// IncomingSMSURL receives inbound SMS (POST /messages/incoming).
	IncomingSMSURL string
	// AdvancedOptOut plays a Messaging Service with Advanced Opt-Out: the
	// inbound webhook of a keyword carries OptOutType (STOP, START, HELP),
	// and OptOutKeywords add custom keywords (word → type, e.g. "ARRET":
	// "STOP"). Without it Twilio's default opt-out handling applies: the
	// standard keywords still opt out, in and get Twilio's reply, but the
	// webhook is not told.
	AdvancedOptOut bool
	OptOutKeywords map[string]string

	// HTTPClient delivers callbacks and fetches TwiML. Default: 15 s timeout.
	HTTPClient *http.Client
	// Log receives debug lines about what the emulator does. Default: no-op.
	Log *zap.Logger
	// Now is the clock used for timestamps. Default time.Now.
	Now func() time.Time
	// MinuteLength is how long a Twilio minute lasts in the emulator (room
	// empty/unused timeouts are counted in these); a second is MinuteLength/60
	// (ringing, <Pause>, <Gather timeout>, call Timeout). Default time.Minute;
	// tests shorten it.
	MinuteLength time.Duration
	// MachineDetectionTime, when set, is how long answering-machine
	// detection takes on every call (wall clock), instead of the greeting's
	// length in emulator seconds (amd.go). Tests shorten it.
	MachineDetectionTime time.Duration
}

// Emulator plays Twilio for visitflow: it serves the REST resources we use,
// records everything, and calls back signed like Twilio. Create one with New,
// serve Handler, and Close it when done.
type Emulator struct {
	opts   Options
	log    *zap.Logger
	client *http.Client
	sec    time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	calls    []*call
	callBy   map[string]*call
	messages []*message
	msgBy    map[string]*message
	rooms    []*room
	roomBy   map[string]*room // by SID
	attempts map[string]int   // calls placed per destination (busy-once)
	faults   Faults
	// optedOut holds the numbers that texted a STOP keyword (until START):
	// Twilio refuses to send to them (21610).
	optedOut       map[string]bool
	customKeywords map[string]string // OptOutKeywords, upper-case
	queueDrained   bool              // NumberQueueFull refused its first message

	evMu    sync.Mutex
	events  []Event
	evReady chan struct{} // closed and replaced whenever an event is recorded
}

// New returns a running Emulator. It starts no listener: serve Handler.
func New(opts Options) *Emulator {
	if opts.AccountSID == "" {
		opts.AccountSID = DefaultAccountSID
	}
	if opts.AuthToken == "" {
		opts.AuthToken = DefaultAuthToken
	}
	if opts.PhoneNumber == "" {
		opts.PhoneNumber = DefaultPhoneNumber
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinuteLength <= 0 {
		opts.MinuteLength = time.Minute
	}
	e := &Emulator{
		opts:     opts,
		log:      opts.Log,
		client:   opts.HTTPClient,
		sec:      opts.MinuteLength / 60,
		callBy:   map[string]*call{},
		msgBy:    map[string]*message{},
		roomBy:   map[string]*room{},
		attempts: map[string]int{},
		optedOut: map[string]bool{},
		evReady:  make(chan struct{}),

		customKeywords: map[string]string{},
	}
	for word, typ := range opts.OptOutKeywords {
		e.customKeywords[strings.ToUpper(strings.TrimSpace(word))] = strings.ToUpper(typ)
	}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.client == nil {
		e.client = &http.Client{Timeout: 15 * time.Second}
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e
}

// Close stops timers and goroutines and waits for them; in-flight callbacks
// are abandoned. The handler answers 503 afterwards.
func (e *Emulator) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	for _, r := range e.rooms {
		r.stopTimer()
	}
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
}

// goLocked runs f on a tracked goroutine unless the emulator is closed.
// e.mu must be held.
func (e *Emulator) goLocked(f func()) {
	if e.closed {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

func (e *Emulator) now() time.Time { return e.opts.Now().UTC() }

// seconds converts Twilio seconds into emulator time.
func (e *Emulator) seconds(n float64) time.Duration {
	return time.Duration(n * float64(e.sec))
}

// Handler serves the Twilio REST API (as rerouted by twilioapi) and the
// control/inspection API. Paths may carry a leading "/sandbox" (stripped), so
// the handler works mounted at "/sandbox/" with or without http.StripPrefix.
// Routing is by path only; the Host header (api.twilio.com, video.twilio.com
// or the emulator's own) is ignored.
func (e *Emulator) Handler() http.Handler {
	mux := http.NewServeMux()
	// Twilio REST API (basic auth).
	mux.Handle("POST /2010-04-01/Accounts/{AccountSid}/Calls.json", e.rest(e.faultedCreate(e.handleCreateCall)))
	mux.Handle("GET /2010-04-01/Accounts/{AccountSid}/Calls.json", e.rest(e.handleListCallResource))
	mux.Handle("GET /2010-04-01/Accounts/{AccountSid}/Messages.json", e.rest(e.handleListMessageResource))
	mux.Handle("GET /2010-04-01/Accounts/{AccountSid}/Calls/{file}", e.rest(e.handleFetchCall))
	mux.Handle("POST /2010-04-01/Accounts/{AccountSid}/Calls/{file}", e.rest(e.handleUpdateCall))
	mux.Handle("POST /2010-04-01/Accounts/{AccountSid}/Messages.json", e.rest(e.faultedCreate(e.handleCreateMessage)))
	mux.Handle("GET /2010-04-01/Accounts/{AccountSid}/Messages/{file}", e.rest(e.handleFetchMessage))
	mux.Handle("POST /v1/Rooms", e.rest(e.faultedCreate(e.handleCreateRoom)))
	mux.Handle("GET /v1/Rooms/{Sid}", e.rest(e.handleFetchRoom))
	mux.Handle("POST /v1/Rooms/{Sid}", e.rest(e.handleUpdateRoom))
	mux.Handle("GET /v1/Rooms/{RoomSid}/Participants", e.rest(e.handleListParticipants))
	mux.Handle("GET /v1/Rooms/{RoomSid}/Participants/{Sid}", e.rest(e.handleFetchParticipant))
	mux.Handle("/2010-04-01/", e.rest(notFound))
	mux.Handle("/v1/", e.rest(notFound))

	// Control and inspection API (sandbox only, no auth: it is test data).
	mux.HandleFunc("GET /calls", e.handleListCalls)
	mux.HandleFunc("GET /messages", e.handleListMessages)
	mux.HandleFunc("GET /rooms", e.handleListRooms)
	mux.HandleFunc("GET /events", e.handleListEvents)
	mux.HandleFunc("POST /rooms/{name}/participants", e.handleJoinRoom)
	mux.HandleFunc("DELETE /rooms/{name}/participants/{identity}", e.handleLeaveRoom)
	mux.HandleFunc("POST /calls/incoming", e.handleIncomingCall)
	mux.HandleFunc("POST /calls/{sid}/digits", e.handleDigits)
	mux.HandleFunc("POST /messages/incoming", e.handleIncomingSMS)
	mux.HandleFunc("POST /clock/advance", e.handleAdvance)
	mux.HandleFunc("GET /faults", e.handleGetFaults)
	mux.HandleFunc("POST /faults", e.handleSetFaults)
	mux.HandleFunc("DELETE /faults", e.handleClearFaults)
	mux.HandleFunc("GET /{$}", e.handleIndex)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		if closed {
			http.Error(w, "sandbox closed", http.StatusServiceUnavailable)
			return
		}
		if p := r.URL.Path; p == "/sandbox" || strings.HasPrefix(p, "/sandbox/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(p, "/sandbox")
			r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, "/sandbox")
			if r2.URL.Path == "" {
				r2.URL.Path = "/"
			}
			r = r2
		}
		mux.ServeHTTP(w, r)
	})
}

// rest wraps a Twilio REST handler: basic auth, account check, form parsing.
func (e *Emulator) rest(h func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || !e.validCredentials(user, pass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
			writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
			return
		}
		if ac := r.PathValue("AccountSid"); ac != "" && ac != e.opts.AccountSID {
			writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				writeError(w, http.StatusBadRequest, 20001, "Unable to parse form body")
				return
			}
		}
		h(w, r)
	})
}

func (e *Emulator) validCredentials(user, pass string) bool {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	if eq(user, e.opts.AccountSID) && eq(pass, e.opts.AuthToken) {
		return true
	}
	return e.opts.APIKeySID != "" && e.opts.APIKeySecret != "" &&
		eq(user, e.opts.APIKeySID) && eq(pass, e.opts.APIKeySecret)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
}

// apiError is Twilio's JSON error body.
type apiError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, apiError{
		Code:     code,
		Message:  msg,
		MoreInfo: fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		Status:   status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// newSID returns prefix + 32 lowercase hex digits, the shape of Twilio SIDs.
func newSID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Timestamp layouts Twilio uses.
const (
	rfc2822   = "Mon, 02 Jan 2006 15:04:05 -0700" // REST 2010-04-01 dates, Voice callbacks
	iso8601   = "2006-01-02T15:04:05Z"            // Video REST dates
	iso8601ms = "2006-01-02T15:04:05.000Z"        // Video callbacks
)

func fmt2822(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(rfc2822)
	return &s
}

func fmtISO(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(iso8601)
	return &s
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// e164 reports whether s looks like a dialable E.164 phone number: + and 8
// to 15 digits, exactly 11 for North America (+1).
func e164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	if s[1] == '1' && len(s) != 12 {
		return false
	}
	for _, c := range s[2:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// decodeJSON reads a small JSON control-API body; an empty body is allowed.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func controlError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
}

func (e *Emulator) handleIndex(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"emulator":    "visitflow Twilio sandbox",
		"account_sid": e.opts.AccountSID,
		"phone":       e.opts.PhoneNumber,
		"inspect":     []string{"GET calls", "GET messages", "GET rooms", "GET events"},
		"control": []string{
			"POST rooms/{name}/participants {identity,kind,token}",
			"POST clock/advance {seconds}",
			"DELETE rooms/{name}/participants/{identity}",
			"POST calls/incoming {from,to}",
			"POST calls/{sid}/digits {digits}",
			"POST messages/incoming {from,to,body}",
			"GET|POST|DELETE faults {drop_status_callbacks,fail_after_accept,delay_after_accept,delay_ms}",
		},
	})
}

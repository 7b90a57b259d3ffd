package twilioapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

const (
	account = "AC0123456789abcdef0123456789abcdef"
	token   = "0123456789abcdef0123456789abcdef"
	apiKey  = "SK0123456789abcdef0123456789abcdef"
	secret  = "keysecret0123456789"
	from    = "+15005550006"
	service = "MG0123456789abcdef0123456789abcdef"
)

func newClient(t *testing.T, cfg twilioapi.Config) *twilioapi.Client {
	t.Helper()
	if cfg.AccountSID == "" {
		cfg.AccountSID, cfg.AuthToken, cfg.FromNumber = account, token, from
	}
	c, err := twilioapi.New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []twilioapi.Config{
		{},
		{AccountSID: "XX123", AuthToken: token},
		{AccountSID: account},
		{AccountSID: account, AuthToken: "not/alnum"},
		{AccountSID: account, AuthToken: token, APIURL: "localhost:8080"},
		{AccountSID: account, AuthToken: token, APIURL: "ftp://x"},
	} {
		if _, err := twilioapi.New(cfg, nil); err == nil {
			t.Errorf("New(%+v) = nil error; want an error", cfg)
		}
	}
	if _, err := twilioapi.New(twilioapi.Config{AccountSID: account, APIKey: apiKey, APISecret: secret}, nil); err != nil {
		t.Errorf("New with API key only: %v", err)
	}
}

// recorded is a request as the (fake) Twilio saw it.
type recorded struct {
	Method, Host, Path, User, Pass, RawBody string
	Form                                    url.Values
}

// fakeTwilio records requests and answers with canned resources. It checks
// the request side; the emulator's answers are checked in package sandbox.
func fakeTwilio(t *testing.T) (*httptest.Server, func() []recorded) {
	var mu sync.Mutex
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		user, pass, _ := r.BasicAuth()
		mu.Lock()
		reqs = append(reqs, recorded{r.Method, r.Host, r.URL.EscapedPath(), user, pass, string(body), form})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.Contains(r.URL.Path, "/Calls"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"sid":"CA0123456789abcdef0123456789abcdef","status":"queued"}`)
		case strings.Contains(r.URL.Path, "/Messages"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}`)
		default:
			fmt.Fprint(w, `{"sid":"RM0123456789abcdef0123456789abcdef","status":"in-progress","unique_name":"visit-V-1","date_created":"2015-07-30T20:00:00Z"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), reqs...)
	}
}

// requestSchema finds the form schema of an operation in an OpenAPI spec.
func requestSchema(t *testing.T, specPath, path, method string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Skipf("OpenAPI spec not available: %v", err)
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	o := func(v any) map[string]any { m, _ := v.(map[string]any); return m }
	schema := o(o(o(o(o(o(spec["paths"])[path])[method])["requestBody"])["content"])["application/x-www-form-urlencoded"])["schema"]
	s := o(schema)
	props := o(s["properties"])
	for k, p := range props {
		pm := o(p)
		if ref, ok := pm["$ref"].(string); ok {
			props[k] = o(o(o(spec["components"])["schemas"])[strings.TrimPrefix(ref, "#/components/schemas/")])
		}
	}
	return s
}

// conform lists how form breaks the schema.
func conform(form url.Values, schema map[string]any) []string {
	var errs []string
	props, _ := schema["properties"].(map[string]any)
	for k, vals := range form {
		p, ok := props[k].(map[string]any)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s is not a parameter of the operation", k))
			continue
		}
		typ := p["type"]
		if typ == "array" {
			p, _ = p["items"].(map[string]any)
			typ = p["type"]
		} else if len(vals) != 1 {
			errs = append(errs, fmt.Sprintf("%s sent %d times", k, len(vals)))
		}
		for _, v := range vals {
			switch typ {
			case "integer":
				if _, err := strconv.Atoi(v); err != nil {
					errs = append(errs, fmt.Sprintf("%s=%q is not an integer", k, v))
				}
			case "boolean":
				if v != "true" && v != "false" {
					errs = append(errs, fmt.Sprintf("%s=%q is not a boolean", k, v))
				}
			}
			if enum, ok := p["enum"].([]any); ok {
				found := false
				for _, e := range enum {
					found = found || e == v
				}
				if !found {
					errs = append(errs, fmt.Sprintf("%s=%q not in %v", k, v, enum))
				}
			}
		}
	}
	req, _ := schema["required"].([]any)
	for _, r := range req {
		if form.Get(r.(string)) == "" {
			errs = append(errs, fmt.Sprintf("required %s missing", r))
		}
	}
	return errs
}

const (
	specAPI   = "../../../shared/twilio-oai/twilio_api_v2010.json"
	specVideo = "../../../shared/twilio-oai/twilio_video_v1.json"
)

func TestRequestsAreReroutedAndConformToOpenAPI(t *testing.T) {
	t.Setenv("TWILIO_EDGE", "sydney")
	t.Setenv("TWILIO_REGION", "au1")
	srv, requests := fakeTwilio(t)
	c := newClient(t, twilioapi.Config{AccountSID: account, AuthToken: token, FromNumber: from, APIURL: srv.URL + "/egress/"})
	cx := ctx(t)

	if _, err := c.CreateCall(cx, twilioapi.CreateCallParams{
		To: "+15551230003", URL: "https://hooks.example.com/twilio/voice/bridge?visit=V-1",
		StatusCallback:       "https://hooks.example.com/twilio/voice/status?visit=V-1",
		StatusCallbackEvents: []string{"initiated", "ringing", "answered", "completed"},
		SendDigits:           "ww1", Timeout: 30 * time.Second, TimeLimit: 90 * time.Minute,
	}); err != nil {
		t.Fatalf("CreateCall: %v", err)
	}
	if err := c.UpdateCallTwiml(cx, "CA0123456789abcdef0123456789abcdef", "<Response><Hangup/></Response>"); err != nil {
		t.Fatal(err)
	}
	if err := c.HangUp(cx, "CA0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendSMS(cx, twilioapi.SendSMSParams{To: "+15551230002", Body: "hi", StatusCallback: "https://hooks.example.com/twilio/sms/status"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRoom(cx, twilioapi.CreateRoomParams{UniqueName: "visit-V-1", StatusCallback: "https://hooks.example.com/twilio/video/status",
		EmptyRoomTimeout: 90 * time.Second, UnusedRoomTimeout: 2 * time.Hour, MaxParticipants: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FetchRoom(cx, "visit V/1"); err != nil {
		t.Fatal(err)
	}
	if err := c.EndRoom(cx, "RM0123456789abcdef0123456789abcdef"); err != nil {
		t.Fatal(err)
	}

	calls := specAPI
	tests := []struct {
		spec, path, method, host, wirePath string
		want                               url.Values
	}{
		{calls, "/2010-04-01/Accounts/{AccountSid}/Calls.json", "post", "api.twilio.com",
			"/egress/2010-04-01/Accounts/" + account + "/Calls.json",
			url.Values{"To": {"+15551230003"}, "From": {from}, "StatusCallbackMethod": {"POST"}, "Timeout": {"30"}, "TimeLimit": {"5400"},
				"StatusCallbackEvent": {"initiated", "ringing", "answered", "completed"}, "SendDigits": {"ww1"}}},
		{calls, "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", "post", "api.twilio.com",
			"/egress/2010-04-01/Accounts/" + account + "/Calls/CA0123456789abcdef0123456789abcdef.json",
			url.Values{"Twiml": {"<Response><Hangup/></Response>"}}},
		{calls, "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", "post", "api.twilio.com",
			"/egress/2010-04-01/Accounts/" + account + "/Calls/CA0123456789abcdef0123456789abcdef.json",
			url.Values{"Status": {"completed"}}},
		{calls, "/2010-04-01/Accounts/{AccountSid}/Messages.json", "post", "api.twilio.com",
			"/egress/2010-04-01/Accounts/" + account + "/Messages.json",
			url.Values{"To": {"+15551230002"}, "From": {from}, "Body": {"hi"}}},
		{specVideo, "/v1/Rooms", "post", "video.twilio.com", "/egress/v1/Rooms",
			url.Values{"Type": {"group"}, "UniqueName": {"visit-V-1"}, "StatusCallbackMethod": {"POST"},
				"EmptyRoomTimeout": {"2"}, "UnusedRoomTimeout": {"60"}, "MaxParticipants": {"10"}}},
		{"", "", "get", "video.twilio.com", "/egress/v1/Rooms/visit%20V%2F1", url.Values{}},
		{specVideo, "/v1/Rooms/{Sid}", "post", "video.twilio.com", "/egress/v1/Rooms/RM0123456789abcdef0123456789abcdef",
			url.Values{"Status": {"completed"}}},
	}
	got := requests()
	if len(got) != len(tests) {
		t.Fatalf("fake Twilio saw %d requests; want %d: %+v", len(got), len(tests), got)
	}
	for i, tt := range tests {
		r := got[i]
		if r.Host != tt.host || r.Path != tt.wirePath || !strings.EqualFold(r.Method, tt.method) {
			t.Errorf("request %d = %s %s%s; want %s %s%s", i, r.Method, r.Host, r.Path, strings.ToUpper(tt.method), tt.host, tt.wirePath)
		}
		if r.User != account || r.Pass != token {
			t.Errorf("request %d basic auth = %q:%q", i, r.User, r.Pass)
		}
		for k, want := range tt.want {
			if g := r.Form[k]; strings.Join(g, ",") != strings.Join(want, ",") {
				t.Errorf("request %d %s = %q; want %q", i, k, g, want)
			}
		}
		if tt.spec != "" {
			for _, err := range conform(r.Form, requestSchema(t, tt.spec, tt.path, tt.method)) {
				t.Errorf("request %d (%s %s): %s", i, tt.method, tt.path, err)
			}
		}
	}
	// The repeated field arrives as separate form fields, not one joined value.
	if n := strings.Count(got[0].RawBody, "StatusCallbackEvent="); n != 4 {
		t.Errorf("CreateCall body %q has %d StatusCallbackEvent fields; want 4", got[0].RawBody, n)
	}
}

func TestSendSMSThroughMessagingService(t *testing.T) {
	srv, requests := fakeTwilio(t)
	c := newClient(t, twilioapi.Config{AccountSID: account, APIKey: apiKey, APISecret: secret, FromNumber: from,
		MessagingServiceSID: service, APIURL: srv.URL})
	if _, err := c.SendSMS(ctx(t), twilioapi.SendSMSParams{To: "+15551230002", Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	r := requests()[0]
	if r.Form.Get("MessagingServiceSid") != service || r.Form.Has("From") || r.User != apiKey || r.Pass != secret {
		t.Errorf("SendSMS sent %v as %s; want MessagingServiceSid and no From, API key auth", r.Form, r.User)
	}
	for _, err := range conform(r.Form, requestSchema(t, specAPI, "/2010-04-01/Accounts/{AccountSid}/Messages.json", "post")) {
		t.Error(err)
	}
}

// emulator serves the sandbox the other supported way: StripPrefix at /sandbox/.
func emulator(t *testing.T) string {
	emu := sandbox.New(sandbox.Options{AccountSID: account, AuthToken: token, MinuteLength: 600 * time.Millisecond,
		Log: zaptest.NewLogger(t)})
	mux := http.NewServeMux()
	mux.Handle("/sandbox/", http.StripPrefix("/sandbox", emu.Handler()))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		emu.Close()
		srv.Close()
	})
	return srv.URL + "/sandbox"
}

func TestAgainstEmulator(t *testing.T) {
	c := newClient(t, twilioapi.Config{AccountSID: account, AuthToken: token, FromNumber: from, APIURL: emulator(t)})
	cx := ctx(t)
	room, err := c.CreateRoom(cx, twilioapi.CreateRoomParams{UniqueName: "visit-V-7", UnusedRoomTimeout: time.Hour})
	if err != nil || room.Status != "in-progress" {
		t.Fatalf("CreateRoom = %+v, %v", room, err)
	}
	if again, err := c.CreateRoom(cx, twilioapi.CreateRoomParams{UniqueName: "visit-V-7"}); err != nil || again != room {
		t.Errorf("CreateRoom again = %+v, %v; want %+v", again, err, room)
	}
	if err := c.EndRoom(cx, room.SID); err != nil {
		t.Errorf("EndRoom: %v", err)
	}
	if err := c.EndRoom(cx, room.SID); err != nil {
		t.Errorf("EndRoom twice: %v", err)
	}
	if got, err := c.FetchRoom(cx, room.SID); err != nil || got.Status != "completed" {
		t.Errorf("FetchRoom = %+v, %v; want completed", got, err)
	}

	call, err := c.CreateCall(cx, twilioapi.CreateCallParams{To: "+15551230003", Twiml: `<Response><Pause length="600"/></Response>`})
	if err != nil || !strings.HasPrefix(call.SID, "CA") {
		t.Fatalf("CreateCall = %+v, %v", call, err)
	}
	if err := c.HangUp(cx, call.SID); err != nil {
		t.Errorf("HangUp: %v", err)
	}
	if err := c.HangUp(cx, call.SID); err != nil {
		t.Errorf("HangUp twice: %v", err)
	}
	if _, err := c.CreateCall(cx, twilioapi.CreateCallParams{To: "+15551230003"}); twilioapi.Code(err) != 21205 || !twilioapi.Permanent(err) {
		t.Errorf("CreateCall without Url or Twiml = %v; want permanent 21205", err)
	}
	if msg, err := c.SendSMS(cx, twilioapi.SendSMSParams{To: "+15551230002", Body: "hi"}); err != nil || msg.Status != "queued" {
		t.Errorf("SendSMS = %+v, %v", msg, err)
	}
}

func TestErrorClassification(t *testing.T) {
	sandboxURL := emulator(t)
	html503 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "<html>upstream unavailable</html>")
	}))
	t.Cleanup(html503.Close)
	stall := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stall:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(stall) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	sms := func(to string) func(*twilioapi.Client) error {
		return func(c *twilioapi.Client) error {
			_, err := c.SendSMS(ctx(t), twilioapi.SendSMSParams{To: to, Body: "hi"})
			return err
		}
	}
	call := func(to string) func(*twilioapi.Client) error {
		return func(c *twilioapi.Client) error {
			_, err := c.CreateCall(ctx(t), twilioapi.CreateCallParams{To: to, Twiml: "<Response/>"})
			return err
		}
	}
	tests := []struct {
		name, apiURL string
		do           func(*twilioapi.Client) error
		status, code int
		class        twilioapi.Class
		op, hidden   string
	}{
		{"400 21211", sandboxURL, call("+1555"), 400, 21211, twilioapi.ClassFinal, "create call", "1555"},
		{"400 21211 sms", sandboxURL, sms("+15005550001"), 400, 21211, twilioapi.ClassFinal, "send sms", "5005550001"},
		{"400 21610", sandboxURL, sms("+15005550004"), 400, 21610, twilioapi.ClassFinal, "send sms", "5005550004"},
		{"429 20429", sandboxURL, call("+15005550429"), 429, 20429, twilioapi.ClassTransient, "create call", "5005550429"},
		{"500", sandboxURL, sms("+15005550500"), 500, 20500, twilioapi.ClassAmbiguous, "send sms", "5005550500"},
		{"503 without JSON", html503.URL, sms("+15551230002"), 503, 0, twilioapi.ClassAmbiguous, "send sms", "5551230002"},
		{"connection refused", refused, sms("+15551230002"), 0, 0, twilioapi.ClassTransient, "send sms", "5551230002"},
		{"timeout", slow.URL, call("+15551230002"), 0, 0, twilioapi.ClassAmbiguous, "create call", "5551230002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, twilioapi.Config{AccountSID: account, AuthToken: token, FromNumber: from,
				APIURL: tt.apiURL, Timeout: 300 * time.Millisecond})
			err := tt.do(c)
			var te *twilioapi.Error
			if !errors.As(err, &te) {
				t.Fatalf("error = %v (%T); want *twilioapi.Error", err, err)
			}
			if te.Status != tt.status || te.Code != tt.code || te.Class != tt.class || te.Op != tt.op {
				t.Errorf("error = %+v; want op %q status %d code %d class %v", te, tt.op, tt.status, tt.code, tt.class)
			}
			if twilioapi.ClassOf(err) != tt.class || twilioapi.Permanent(err) != (tt.class == twilioapi.ClassFinal) ||
				twilioapi.Ambiguous(err) != (tt.class == twilioapi.ClassAmbiguous) ||
				twilioapi.Transient(err) != (tt.class == twilioapi.ClassTransient) || twilioapi.Code(err) != tt.code {
				t.Errorf("ClassOf/Permanent/Ambiguous/Transient/Code disagree for %v", err)
			}
			if strings.Contains(err.Error(), tt.hidden) || strings.Contains(te.Message, tt.hidden) {
				t.Errorf("error %q shows the phone number", err)
			}
			if tt.name == "timeout" && !strings.Contains(err.Error(), "timeout") {
				t.Errorf("error = %q; want it to say timeout", err)
			}
		})
	}
	if twilioapi.Retryable(errors.New("other")) || twilioapi.Permanent(errors.New("other")) || twilioapi.Code(nil) != 0 {
		t.Error("non-Twilio errors are neither retryable nor permanent")
	}
}

func TestAccessToken(t *testing.T) {
	c := newClient(t, twilioapi.Config{AccountSID: account, AuthToken: token, APIKey: apiKey, APISecret: secret})
	until := time.Now().Add(20 * time.Minute).Truncate(time.Second)
	tok, err := c.AccessToken("pat-8812", "visit-V-42", time.Time{}, until)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", tok)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); parts[2] != want {
		t.Errorf("signature %s; want HS256 with the API secret", parts[2])
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Iss, Sub string
		Exp      float64
		Grants   struct {
			Identity string
			Video    struct{ Room string }
		}
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Iss != apiKey || claims.Sub != account || int64(claims.Exp) != until.Unix() ||
		claims.Grants.Identity != "pat-8812" || claims.Grants.Video.Room != "visit-V-42" {
		t.Errorf("claims = %s; want iss %s, sub %s, exp %d, identity pat-8812, room visit-V-42", raw, apiKey, account, until.Unix())
	}
	noKey := newClient(t, twilioapi.Config{AccountSID: account, AuthToken: token})
	if _, err := noKey.AccessToken("pat-8812", "visit-V-42", time.Time{}, until); err == nil {
		t.Error("AccessToken without an API key = nil error")
	}
}

// Refused credentials are retried like any transient refusal, and said
// loudly, once, however many requests fail.
func TestRefusedCredentialsAreTransientAndLoggedOnce(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	c, err := twilioapi.New(twilioapi.Config{AccountSID: account, AuthToken: "wrongtoken", FromNumber: from,
		APIURL: emulator(t)}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err := c.SendSMS(ctx(t), twilioapi.SendSMSParams{To: "+15551230002", Body: "hi"})
		if !twilioapi.Transient(err) || !twilioapi.Credentials(err) || twilioapi.Code(err) != 20003 {
			t.Fatalf("SendSMS with a wrong auth token = %v (class %v); want a transient 20003", err, twilioapi.ClassOf(err))
		}
	}
	if n := logs.Len(); n != 1 || !strings.Contains(logs.All()[0].Message, "credentials") {
		t.Fatalf("%d error logs %v; want one about the credentials", n, logs.All())
	}
}

// Calls made at once, as a worker's concurrent jobs make them, reuse their
// connections afterwards: net/http's default kept two idle per host, so
// every later burst dialled (and against Twilio, TLS-handshook) again.
func TestConcurrentCallsReuseTheirConnections(t *testing.T) {
	emu := sandbox.New(sandbox.Options{AccountSID: account, AuthToken: token, Log: zaptest.NewLogger(t)})
	mux := http.NewServeMux()
	mux.Handle("/sandbox/", http.StripPrefix("/sandbox", emu.Handler()))
	srv := httptest.NewUnstartedServer(mux)
	var dialled atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialled.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(func() { emu.Close(); srv.Close() })
	c := newClient(t, twilioapi.Config{AccountSID: account, AuthToken: token, FromNumber: from, APIURL: srv.URL + "/sandbox"})
	cx := ctx(t)
	room, err := c.CreateRoom(cx, twilioapi.CreateRoomParams{UniqueName: "visit-V-conns", UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const concurrent, bursts = 16, 3
	for b := 0; b < bursts; b++ {
		var wg sync.WaitGroup
		for i := 0; i < concurrent; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.FetchRoom(cx, room.SID); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if n := dialled.Load(); n > concurrent+1 {
		t.Errorf("%d bursts of %d concurrent calls opened %d connections; want at most %d (the first burst's, and the create's)",
			bursts, concurrent, n, concurrent+1)
	}
}

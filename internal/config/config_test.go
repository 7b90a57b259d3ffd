package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/visitflow/visitflow/internal/redisurl"
)

const repoConfig = "../../config.yaml"

// env turns a map into a getenv function.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// withExampleLine is Default plus the example interpreter line that
// config.yaml documents.
func withExampleLine() Config {
	c := Default()
	c.Interpreter.Lines = map[string]InterpreterLine{
		// The emulator's busy-once number (simulate --scenario interpreter).
		"voyce-es": {Phone: "+15005550009", IVR: "ww2ww1234#", Languages: []string{"es"}},
	}
	return c
}

func TestDefaultIsValidSandbox(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v; want nil", err)
	}
	if !c.Sandbox() {
		t.Error("Default().Sandbox() = false; want true")
	}
}

// TestConfigYAMLMatchesDefault keeps the documented file and the code equal.
func TestConfigYAMLMatchesDefault(t *testing.T) {
	got, err := Load(repoConfig, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", repoConfig, err)
	}
	if want := withExampleLine(); !reflect.DeepEqual(got, want) {
		t.Errorf("Load(%s) =\n%s\nwant Default() plus the voyce-es line:\n%s", repoConfig, got, want)
	}
}

// yamlLeaves returns the key paths of the scalar and list values in a YAML
// mapping, with each key node's comments.
func yamlLeaves(n *yaml.Node, path string, out map[string]string) {
	if n.Kind == yaml.DocumentNode {
		yamlLeaves(n.Content[0], path, out)
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
			yamlLeaves(v, p, out)
			continue
		}
		out[p] = k.HeadComment + "\n" + k.LineComment + "\n" + v.LineComment
	}
}

func leafPaths(c *Config) []string {
	var paths []string
	walkLeaves(reflect.ValueOf(c).Elem(), "", func(_ reflect.Value, path string) error {
		paths = append(paths, path)
		return nil
	})
	return paths
}

// TestConfigYAMLDocumentsEveryKey checks that config.yaml has every key of
// Config, each with a comment naming its environment variable.
func TestConfigYAMLDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(repoConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	yamlLeaves(&doc, "", documented)
	c := withExampleLine()
	for _, p := range leafPaths(&c) {
		comment, ok := documented[p]
		if !ok {
			t.Errorf("config.yaml lacks key %s", p)
			continue
		}
		if !strings.Contains(comment, envName(p)) {
			t.Errorf("config.yaml: the comment of %s does not name %s", p, envName(p))
		}
		if strings.TrimSpace(strings.ReplaceAll(comment, envName(p), "")) == "#" {
			t.Errorf("config.yaml: the comment of %s does not say what it does", p)
		}
	}
}

// envValues gives, per key, an environment value that differs from the
// default and passes Validate, plus the variables it needs alongside.
var envValues = map[string]struct {
	value string
	want  any
	extra map[string]string
}{
	"http.addr":                            {":9090", ":9090", nil},
	"http.public_base_url":                 {"https://visits.example.com", "https://visits.example.com", nil},
	"redis.url":                            {"redis://:pw@redis.internal:6380/2", "redis://:pw@redis.internal:6380/2", nil},
	"twilio.account_sid":                   {"AC123", "AC123", nil},
	"twilio.auth_token":                    {"tok", "tok", nil},
	"twilio.secondary_auth_token":          {"tok2", "tok2", nil},
	"twilio.subaccount_tokens":             {"AC1=tok1, AC2=tok2", map[string]string{"AC1": "tok1", "AC2": "tok2"}, nil},
	"twilio.api_key":                       {"SK123", "SK123", map[string]string{"VISITFLOW_TWILIO_API_SECRET": "s"}},
	"twilio.api_secret":                    {"sec", "sec", map[string]string{"VISITFLOW_TWILIO_API_KEY": "SK1"}},
	"twilio.from_number":                   {"+15005550099", "+15005550099", nil},
	"twilio.messaging_service_sid":         {"MG123", "MG123", nil},
	"twilio.api_url":                       {"http://127.0.0.1:9999/twilio", "http://127.0.0.1:9999/twilio", nil},
	"api.token":                            {"t0ken", "t0ken", nil},
	"admin.username":                       {"ops", "ops", nil},
	"admin.password":                       {"pw", "pw", nil},
	"visits.quiet_hours":                   {"22:30-06:15", QuietHours{Start: 22*time.Hour + 30*time.Minute, End: 6*time.Hour + 15*time.Minute, Set: true}, nil},
	"visits.join_url":                      {"https://v.example.com/j/{token}", "https://v.example.com/j/{token}", nil},
	"visits.reminder_offsets":              {"2h, 3m", []time.Duration{2 * time.Hour, 3 * time.Minute}, nil},
	"visits.empty_room_timeout":            {"7m", 7 * time.Minute, nil},
	"visits.unused_room_timeout":           {"8m", 8 * time.Minute, nil},
	"visits.optout_secret":                 {"hmac-key", "hmac-key", nil},
	"interpreter.lines.voyce-es.phone":     {"+15005550011", "+15005550011", nil},
	"interpreter.lines.voyce-es.ivr":       {"1w#", "1w#", nil},
	"interpreter.lines.voyce-es.languages": {"es,pt-BR", []string{"es", "pt-BR"}, nil},
	"log.level":                            {"debug", "debug", nil},
	"log.format":                           {"json", "json", nil},
	"redis.namespace":                      {"clinic-b", "clinic-b", nil},
	"api.tokens":                           {"ehr:tok-1, cron:tok-2", []APIToken{{Name: "ehr", Token: "tok-1"}, {Name: "cron", Token: "tok-2"}}, nil},
	"board.timezone":                       {"America/Chicago", "America/Chicago", nil},
	"audit.retention":                      {"48h", 48 * time.Hour, nil},

	// Dial-in: values that pass Validate (a PIN length, limited tries within tries per call).
	"visits.dial_in_pin_digits":             {"12", 12, nil},
	"visits.dial_in_limited_tries_per_call": {"2", 2, nil},
	"visits.dial_in_limited_hold":           {"45s", 45 * time.Second, nil},
}

// TestEnvOverridesEveryKey sets each key of config.yaml through its
// environment variable alone and checks that Load picks it up.
func TestEnvOverridesEveryKey(t *testing.T) {
	base, err := Load(repoConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range leafPaths(&base) {
		cur := leaf(t, &base, path)
		ev, ok := envValues[path]
		switch {
		case ok:
		case strings.HasPrefix(path, "visits.templates."):
			ev.value, ev.want = "Hi {{.Patient}}", "Hi {{.Patient}}"
		case cur.Type() == durationType:
			ev.value, ev.want = "123s", 123*time.Second
		case cur.Kind() == reflect.Bool:
			ev.value, ev.want = map[bool]string{true: "false", false: "true"}[cur.Bool()], !cur.Bool()
		case cur.Kind() == reflect.Int:
			ev.value, ev.want = "77", 77
		case cur.Kind() == reflect.Int64:
			ev.value, ev.want = "77", int64(77)
		default:
			t.Errorf("no test value for key %s (%s): add one to envValues", path, cur.Type())
			continue
		}
		vars := map[string]string{envName(path): ev.value}
		for k, v := range ev.extra {
			vars[k] = v
		}
		got, err := Load(repoConfig, env(vars))
		if err != nil {
			t.Errorf("Load with %s=%q: %v", envName(path), ev.value, err)
			continue
		}
		if g := leaf(t, &got, path).Interface(); !reflect.DeepEqual(g, ev.want) {
			t.Errorf("Load with %s=%q: %s = %#v; want %#v", envName(path), ev.value, path, g, ev.want)
		}
		if reflect.DeepEqual(cur.Interface(), ev.want) {
			t.Errorf("test value for %s equals the default; the test would not notice a missing override", path)
		}
	}
}

func leaf(t *testing.T, c *Config, path string) reflect.Value {
	t.Helper()
	var found reflect.Value
	walkLeaves(reflect.ValueOf(c).Elem(), "", func(v reflect.Value, p string) error {
		if p == path {
			found = reflect.ValueOf(v.Interface())
		}
		return nil
	})
	if !found.IsValid() {
		t.Fatalf("no key %s", path)
	}
	return found
}

func TestTwilioEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Twilio
	}{
		{"standard names", map[string]string{
			"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "tok", "TWILIO_API_KEY": "SK1", "TWILIO_API_SECRET": "sec",
		}, Twilio{AccountSID: "AC1", AuthToken: "tok", APIKey: "SK1", APISecret: "sec"}},
		{"VISITFLOW_ wins", map[string]string{
			"TWILIO_ACCOUNT_SID": "AC1", "VISITFLOW_TWILIO_ACCOUNT_SID": "AC2",
			"TWILIO_AUTH_TOKEN": "tok1", "VISITFLOW_TWILIO_AUTH_TOKEN": "tok2",
			"TWILIO_API_KEY": "SK1", "VISITFLOW_TWILIO_API_KEY": "SK2", "TWILIO_API_SECRET": "sec",
		}, Twilio{AccountSID: "AC2", AuthToken: "tok2", APIKey: "SK2", APISecret: "sec"}},
	}
	for _, tt := range tests {
		// What live mode needs besides the credentials.
		tt.env["VISITFLOW_API_TOKEN"], tt.env["VISITFLOW_ADMIN_PASSWORD"] = "t", "p"
		tt.env["VISITFLOW_HTTP_PUBLIC_BASE_URL"] = "https://visits.example.com"
		tt.env["VISITFLOW_TWILIO_FROM_NUMBER"] = "+15551230000"
		c, err := Load(repoConfig, env(tt.env))
		if err != nil {
			t.Fatalf("%s: Load: %v", tt.name, err)
		}
		got := Twilio{AccountSID: c.Twilio.AccountSID, AuthToken: c.Twilio.AuthToken, APIKey: c.Twilio.APIKey, APISecret: c.Twilio.APISecret}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Load credentials = %+v; want %+v", tt.name, got, tt.want)
		}
		if c.Sandbox() {
			t.Errorf("%s: Sandbox() = true with credentials set", tt.name)
		}
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want string // the whole message after the file path is replaced by F
	}{
		{"bad duration", "visits:\n  no_show_after: 15x\n", nil,
			`config: visits.no_show_after: invalid duration "15x" (want Go syntax such as "90s" or "24h") (F:2)`},
		{"unitless duration", "interpreter:\n  ring_timeout: 30\n", nil,
			`config: interpreter.ring_timeout: invalid duration "30" (want Go syntax such as "90s" or "24h") (F:2)`},
		{"unknown key", "visits:\n  no_show_afer: 15m\n", nil, `config: visits.no_show_afer: unknown key (F:2)`},
		{"unknown section", "smtp:\n  host: x\n", nil, `config: smtp: unknown key (F:1)`},
		{"unknown line field", "interpreter:\n  lines:\n    a:\n      phone: \"+15551230001\"\n      pin: 1\n", nil,
			`config: interpreter.lines.a.pin: unknown key (F:5)`},
		{"twice", "log:\n  level: info\n  level: debug\n", nil, `config: log.level: set twice (F:3)`},
		{"bad bool", "admin:\n  read_only: maybe\n", nil, `config: admin.read_only: invalid boolean "maybe" (want true or false) (F:2)`},
		{"bad int", "worker:\n  concurrency: many\n", nil, `config: worker.concurrency: invalid integer "many" (F:2)`},
		{"mapping for scalar", "http:\n  addr:\n    port: 1\n", nil, `config: http.addr: want a single value, got a mapping (F:3)`},
		{"scalar for section", "http: 8080\n", nil, `config: http: want a mapping of keys, got a single value (F:1)`},
		{"bad list item", "visits:\n  reminder_offsets: [1h, x]\n", nil, `config: visits.reminder_offsets: invalid duration "x" (want Go syntax such as "90s" or "24h") (F:2)`},
		{"bad quiet hours", "visits:\n  quiet_hours: \"9pm-8am\"\n", nil,
			`config: visits.quiet_hours: invalid quiet hours "9pm-8am" (want HH:MM-HH:MM, e.g. "21:00-08:00", or "" for none) (F:2)`},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: debug\n", nil, `config: parse F: want one YAML document`},
		{"env bad duration", "", map[string]string{"VISITFLOW_VISITS_FOLLOWUP_AFTER": "soon"},
			`config: visits.followup_after: invalid duration "soon" (want Go syntax such as "90s" or "24h") (from VISITFLOW_VISITS_FOLLOWUP_AFTER)`},
		{"env bad list", "", map[string]string{"VISITFLOW_VISITS_REMINDER_OFFSETS": "1h,,2h"},
			`config: visits.reminder_offsets: invalid duration "" (want Go syntax such as "90s" or "24h") (from VISITFLOW_VISITS_REMINDER_OFFSETS)`},
		{"validation after env", "", map[string]string{"VISITFLOW_VISITS_JOIN_URL": "https://x.example/join"},
			`config: visits.join_url: must contain "{token}", got "https://x.example/join"`},
	}
	for _, tt := range tests {
		path := writeFile(t, tt.file)
		_, err := Load(path, env(tt.env))
		if err == nil {
			t.Errorf("%s: Load succeeded; want %s", tt.name, tt.want)
			continue
		}
		if got := strings.ReplaceAll(err.Error(), path, "F"); got != tt.want {
			t.Errorf("%s: Load error\n got %s\nwant %s", tt.name, got, tt.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: Load error spans several lines: %q", tt.name, err)
		}
	}
}

func TestLoadFileSelection(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if c, err := Load("", nil); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(\"\") without any file = %v, %v; want Default()", c.Log, err)
	}
	os.WriteFile("config.yaml", []byte("log:\n  level: warn\n"), 0o600)
	if c, err := Load("", nil); err != nil || c.Log.Level != "warn" {
		t.Errorf("Load(\"\") with ./config.yaml: log.level = %q, %v; want warn", c.Log.Level, err)
	}
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("log:\n  level: error\n"), 0o600)
	if c, err := Load("", env(map[string]string{"VISITFLOW_CONFIG": other})); err != nil || c.Log.Level != "error" {
		t.Errorf("Load(\"\") with VISITFLOW_CONFIG: log.level = %q, %v; want error", c.Log.Level, err)
	}
	if c, err := Load("", env(map[string]string{"VISITFLOW_CONFIG": other, "VISITFLOW_LOG_LEVEL": "debug"})); err != nil || c.Log.Level != "debug" {
		t.Errorf("Load with VISITFLOW_LOG_LEVEL over the file: log.level = %q, %v; want debug", c.Log.Level, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Load(missing file) error = %v; want does not exist", err)
	}
	os.WriteFile("empty.yaml", nil, 0o600)
	if c, err := Load("empty.yaml", nil); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(empty file) = %v; want Default()", err)
	}
}

func TestLoadKeepsExplicitZeroValues(t *testing.T) {
	path := writeFile(t, "admin:\n  read_only: false\nvisits:\n  reminder_offsets: []\n  quiet_hours: \"\"\n  templates:\n    reminder: \"R {{.When}}\"\n")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.ReadOnly {
		t.Error("admin.read_only: false in the file gave true")
	}
	if len(c.Visits.ReminderOffsets) != 0 {
		t.Errorf("reminder_offsets: [] gave %v", c.Visits.ReminderOffsets)
	}
	if c.Visits.QuietHours.Set {
		t.Errorf("quiet_hours: \"\" gave %v", c.Visits.QuietHours)
	}
	if c.Visits.Templates.Reminder != "R {{.When}}" || c.Visits.Templates.Cancelled != Default().Visits.Templates.Cancelled {
		t.Errorf("templates: one key set changed %+v", c.Visits.Templates)
	}
}

func TestValidate(t *testing.T) {
	live := func(c *Config) {
		c.Twilio.AccountSID, c.Twilio.AuthToken = "AC1", "tok"
		c.Twilio.APIKey, c.Twilio.APISecret = "SK1", "sec"
		c.Twilio.FromNumber = "+15551230000"
		c.HTTP.PublicBaseURL = "https://visits.example.com"
		c.API.Token, c.Admin.Password = "t", "p"
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"live with secrets", live, ""},
		{"live without api token", func(c *Config) { live(c); c.API.Token = "" }, "config: api.token: required outside sandbox mode"},
		{"live without admin password", func(c *Config) { live(c); c.Admin.Password = "" }, "config: admin.password: required outside sandbox mode"},
		{"sandbox needs no secrets", func(c *Config) { c.Twilio.AccountSID = "AC1" }, ""},
		// Live mode refuses what only the sandbox can use.
		{"live on localhost", func(c *Config) { live(c); c.HTTP.PublicBaseURL = "http://localhost:8080" }, "config: http.public_base_url: outside sandbox mode"},
		{"live on 127.0.0.1", func(c *Config) { live(c); c.HTTP.PublicBaseURL = "http://127.0.0.1:8080" }, "config: http.public_base_url: outside sandbox mode"},
		{"live on [::1]", func(c *Config) { live(c); c.HTTP.PublicBaseURL = "https://[::1]" }, "config: http.public_base_url: outside sandbox mode"},
		{"live with the test number", func(c *Config) { live(c); c.Twilio.FromNumber = "+15005550006" }, "config: twilio.from_number: outside sandbox mode"},
		{"live with the test number and a service", func(c *Config) {
			live(c)
			c.Twilio.FromNumber, c.Twilio.MessagingServiceSID = "+15005550006", "MG1"
		}, ""},
		{"live without an API key", func(c *Config) { live(c); c.Twilio.APIKey, c.Twilio.APISecret = "", "" }, "config: twilio.api_key: required outside sandbox mode"},
		{"sandbox keeps its defaults", func(c *Config) { c.Twilio.APIKey = "" }, ""},
		{"bad addr", func(c *Config) { c.HTTP.Addr = "8080" }, "config: http.addr: invalid listen address"},
		{"relative base url", func(c *Config) { c.HTTP.PublicBaseURL = "localhost:8080" }, "config: http.public_base_url: invalid URL"},
		{"ftp base url", func(c *Config) { c.HTTP.PublicBaseURL = "ftp://x.example" }, "config: http.public_base_url: invalid URL"},
		{"base url slash", func(c *Config) { c.HTTP.PublicBaseURL = "https://x.example/" }, "config: http.public_base_url: invalid base URL"},
		{"base url with path", func(c *Config) { c.HTTP.PublicBaseURL = "https://x.example/visitflow" }, ""},
		{"zero body", func(c *Config) { c.HTTP.MaxBodyBytes = 0 }, "config: http.max_body_bytes: must be greater than 0"},
		{"zero shutdown", func(c *Config) { c.HTTP.ShutdownTimeout = 0 }, "config: http.shutdown_timeout: must be greater than 0"},
		{"redis http", func(c *Config) { c.Redis.URL = "http://:pw@x" }, `config: redis.url: unsupported scheme "http"`},
		{"redis no scheme", func(c *Config) { c.Redis.URL = "u:s3cret@localhost:6379" }, "config: redis.url: invalid Redis URL ****@localhost:6379"},
		{"redis cluster", func(c *Config) { c.Redis.URL = "redis-cluster://h1:1,h2:2" }, ""},
		{"redis sentinel no hosts", func(c *Config) { c.Redis.URL = "redis-sentinel://" }, "config: redis.url: invalid Redis URL"},
		{"account sid", func(c *Config) { c.Twilio.AccountSID = "SK1" }, `config: twilio.account_sid: must start with "AC"`},
		{"api key alone", func(c *Config) { c.Twilio.APIKey = "SK1" }, "config: twilio.api_secret: required when twilio.api_key is set"},
		{"api secret alone", func(c *Config) { c.Twilio.APISecret = "s" }, "config: twilio.api_key: required when twilio.api_secret is set"},
		{"from number", func(c *Config) { c.Twilio.FromNumber = "5005550006" }, `config: twilio.from_number: invalid phone number "5005550006"`},
		{"messaging service", func(c *Config) { c.Twilio.MessagingServiceSID = "AC1" }, `config: twilio.messaging_service_sid: must start with "MG"`},
		{"api url", func(c *Config) { c.Twilio.APIURL = "/sandbox" }, "config: twilio.api_url: invalid URL"},
		{"api url ok", func(c *Config) { c.Twilio.APIURL = "http://127.0.0.1:8080/sandbox" }, ""},
		{"request timeout", func(c *Config) { c.Twilio.RequestTimeout = -time.Second }, "config: twilio.request_timeout: must be greater than 0, got -1s"},
		{"no admin user", func(c *Config) { c.Admin.Username = "" }, "config: admin.username: required"},
		{"negative offset", func(c *Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour, -time.Hour} }, "config: visits.reminder_offsets: offsets must be greater than 0, got -1h"},
		{"duplicate offset", func(c *Config) { c.Visits.ReminderOffsets = []time.Duration{time.Hour, 60 * time.Minute} }, "config: visits.reminder_offsets: offset 1h listed twice"},
		{"no reminders", func(c *Config) { c.Visits.ReminderOffsets = nil }, ""},
		{"no show", func(c *Config) { c.Visits.NoShowAfter = 0 }, "config: visits.no_show_after: must be greater than 0, got 0s"},
		{"provider late", func(c *Config) { c.Visits.ProviderLateAfter = 0 }, "config: visits.provider_late_after"},
		{"followup", func(c *Config) { c.Visits.FollowupAfter = 0 }, "config: visits.followup_after"},
		{"join url token", func(c *Config) { c.Visits.JoinURL = "https://x.example/join" }, `config: visits.join_url: must contain "{token}"`},
		{"join url relative", func(c *Config) { c.Visits.JoinURL = "/join/{token}" }, "config: visits.join_url: invalid URL"},
		{"room lead", func(c *Config) { c.Visits.RoomLead = 0 }, "config: visits.room_lead"},
		{"pin digits 5", func(c *Config) { c.Visits.DialInPINDigits = 5 }, "config: visits.dial_in_pin_digits: must be between 6 and 12, got 5"},
		{"pin digits 6", func(c *Config) { c.Visits.DialInPINDigits = 6 }, ""},
		{"pin digits 13", func(c *Config) { c.Visits.DialInPINDigits = 13 }, "config: visits.dial_in_pin_digits: must be between 6 and 12, got 13"},
		{"dial-in tries", func(c *Config) { c.Visits.DialInTriesPerCall = 0 }, "config: visits.dial_in_tries_per_call"},
		{"dial-in budget", func(c *Config) { c.Visits.DialInFailureBudget = 0 }, "config: visits.dial_in_failure_budget: must be greater than 0"},
		{"dial-in budget window", func(c *Config) { c.Visits.DialInFailureBudgetWindow = 0 }, "config: visits.dial_in_failure_budget_window"},
		{"dial-in caller limit", func(c *Config) { c.Visits.DialInCallerFailureLimit = 0 }, "config: visits.dial_in_caller_failure_limit"},
		{"dial-in caller window", func(c *Config) { c.Visits.DialInCallerFailureWindow = 0 }, "config: visits.dial_in_caller_failure_window"},
		{"dial-in hold", func(c *Config) { c.Visits.DialInLimitedHold = 0 }, "config: visits.dial_in_limited_hold: must be between 1s and 5m, got 0s"},
		{"dial-in limited tries", func(c *Config) { c.Visits.DialInLimitedTriesPerCall = 4 }, "config: visits.dial_in_limited_tries_per_call: must be between 1 and 3, got 4"},
		{"room lead past the unused timeout", func(c *Config) { c.Visits.RoomLead = 50 * time.Minute }, "config: visits.room_lead: room_lead + no_show_after must be at most 60m"},
		{"empty room 90s", func(c *Config) { c.Visits.EmptyRoomTimeout = 90 * time.Second }, "config: visits.empty_room_timeout: must be whole minutes from 1m to 60m, got 1m30s"},
		{"unused room 2h", func(c *Config) { c.Visits.UnusedRoomTimeout = 2 * time.Hour }, "config: visits.unused_room_timeout: must be whole minutes from 1m to 60m, got 2h"},
		{"retention", func(c *Config) { c.Visits.Retention = 0 }, "config: visits.retention"},
		{"schedule horizon", func(c *Config) { c.Visits.ScheduleHorizon = 0 }, "config: visits.schedule_horizon"},
		{"write timeout", func(c *Config) { c.HTTP.WriteTimeout = 0 }, "config: http.write_timeout"},
		{"subaccount not a sid", func(c *Config) { c.Twilio.SubaccountTokens = map[string]string{"XY1": "t"} }, "config: twilio.subaccount_tokens"},
		{"subaccount without token", func(c *Config) { c.Twilio.SubaccountTokens = map[string]string{"AC1": ""} }, "config: twilio.subaccount_tokens"},
		{"template syntax", func(c *Config) { c.Visits.Templates.Invite = "Join {{.JoinURL" }, "config: visits.templates.invite: invalid template"},
		{"template empty", func(c *Config) { c.Visits.Templates.Followup = " " }, "config: visits.templates.followup: required"},
		{"max attempts", func(c *Config) { c.Interpreter.MaxAttempts = 0 }, "config: interpreter.max_attempts"},
		{"retry backoff", func(c *Config) { c.Interpreter.RetryBackoff = 0 }, "config: interpreter.retry_backoff"},
		{"ring timeout", func(c *Config) { c.Interpreter.RingTimeout = time.Second }, "config: interpreter.ring_timeout: must be between 5s and 10m, got 1s"},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, `config: log.level: invalid value "verbose" (want one of debug, info, warn, error)`},
		{"log format", func(c *Config) { c.Log.Format = "text" }, "config: log.format"},
		{"concurrency", func(c *Config) { c.Worker.Concurrency = 0 }, "config: worker.concurrency"},
		{"line phone", func(c *Config) { c.Interpreter.Lines["x"] = InterpreterLine{Phone: "555"} }, `config: interpreter.lines.x.phone: invalid phone number "555"`},
		{"line phone missing", func(c *Config) { c.Interpreter.Lines["x"] = InterpreterLine{} }, `config: interpreter.lines.x.phone: invalid phone number ""`},
		{"line ivr chars", func(c *Config) { c.Interpreter.Lines["x"] = InterpreterLine{Phone: "+15551230001", IVR: "12a"} }, `config: interpreter.lines.x.ivr: invalid DTMF path "12a"`},
		{"line ivr long", func(c *Config) {
			c.Interpreter.Lines["x"] = InterpreterLine{Phone: "+15551230001", IVR: strings.Repeat("w", 33)}
		}, "config: interpreter.lines.x.ivr: invalid DTMF path"},
		{"line ivr 32", func(c *Config) {
			c.Interpreter.Lines["x"] = InterpreterLine{Phone: "+15551230001", IVR: strings.Repeat("W", 30) + "*#"}
		}, ""},
		{"line language", func(c *Config) {
			c.Interpreter.Lines["x"] = InterpreterLine{Phone: "+15551230001", Languages: []string{"Spanish"}}
		}, `config: interpreter.lines.x.languages: invalid language tag "Spanish"`},
		{"line name", func(c *Config) { c.Interpreter.Lines["Voyce ES"] = InterpreterLine{Phone: "+15551230001"} }, "config: interpreter.lines.Voyce ES: invalid line name"},
		{"line names clash", func(c *Config) {
			c.Interpreter.Lines["a-b"] = InterpreterLine{Phone: "+15551230001"}
			c.Interpreter.Lines["a_b"] = InterpreterLine{Phone: "+15551230002"}
		}, "config: interpreter.lines.a_b: clashes with interpreter.lines.a-b"},
	}
	for _, tt := range tests {
		c := withExampleLine()
		tt.change(&c)
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: Validate() = %v; want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%s: Validate() = %v; want %s…", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: Validate() = %v; leaks a secret", tt.name, err)
		}
	}
}

func TestStringMasksSecrets(t *testing.T) {
	c := withExampleLine()
	c.Twilio.AccountSID, c.Twilio.AuthToken = "AC1", "authTOKENvalue"
	c.Twilio.APIKey, c.Twilio.APISecret = "SK1", "apiSECRETvalue"
	c.API.Token, c.Admin.Password = "bearerTOKENvalue", "adminPASSWORDvalue"
	c.Redis.URL = "redis://user:redisPASSWORDvalue@redis.internal:6379/0"
	c.Twilio.SecondaryAuthToken = "secondTOKENvalue"
	c.Twilio.SubaccountTokens = map[string]string{"AC2": "subTOKENvalue"}
	s := c.String()
	for _, secret := range []string{"authTOKENvalue", "apiSECRETvalue", "bearerTOKENvalue", "adminPASSWORDvalue", "redisPASSWORDvalue",
		"secondTOKENvalue", "subTOKENvalue"} {
		if strings.Contains(s, secret) {
			t.Errorf("String() contains the secret %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{
		"auth_token: '****'", "api_secret: '****'", "token: '****'", "password: '****'",
		"url: redis://user:****@redis.internal:6379/0", "account_sid: AC1", "reminder_offsets: [24h, 1h, 10m]",
		"quiet_hours: 21:00-08:00", "voyce-es:", "secondary_auth_token: '****'", "AC2: '****'",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	if empty := Default().String(); strings.Count(empty, "(empty)") != 6 {
		t.Errorf("Default().String() should show the 6 unset secrets as (empty):\n%s", empty)
	}
	var back map[string]any
	if err := yaml.Unmarshal([]byte(s), &back); err != nil {
		t.Errorf("String() is not YAML: %v", err)
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:pw@h:1/0", "redis://:****@h:1/0"},
		{"rediss://u:p@ss@h:1", "rediss://u:****@h:1"},
		{"redis://user@h:1", "redis://user@h:1"},
		{"redis-cluster://u:pw@h1:1,h2:2", "redis-cluster://u:****@h1:1,h2:2"},
		{"redis-sentinel://pw@s1,s2/m/1", "redis-sentinel://****@s1,s2/m/1"},
		{"u:pw@h:1", "****@h:1"},
	}
	for _, tt := range tests {
		if got := redisurl.Mask(tt.in); got != tt.want {
			t.Errorf("redisurl.Mask(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {90 * time.Second, "1m30s"}, {10 * time.Minute, "10m"}, {24 * time.Hour, "24h"},
		{90 * time.Minute, "1h30m"}, {time.Hour + time.Second, "1h0m1s"}, {-time.Hour, "-1h"}, {1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		if got := formatDuration(tt.d); got != tt.want {
			t.Errorf("formatDuration(%v) = %q; want %q", tt.d, got, tt.want)
		}
	}
}

func TestJoinURLFollowsPublicBaseURL(t *testing.T) {
	env := map[string]string{"VISITFLOW_HTTP_PUBLIC_BASE_URL": "https://visits.example.com"}
	c, err := Load(repoConfig, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.JoinURLTemplate(), "https://visits.example.com/join/{token}"; got != want {
		t.Errorf("JoinURLTemplate() with only public_base_url set = %q; want %q", got, want)
	}
	env["VISITFLOW_VISITS_JOIN_URL"] = "https://portal.example.com/visit?invite={token}"
	if c, err = Load(repoConfig, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if got, want := c.JoinURLTemplate(), "https://portal.example.com/visit?invite={token}"; got != want {
		t.Errorf("JoinURLTemplate() with join_url set = %q; want %q", got, want)
	}
}

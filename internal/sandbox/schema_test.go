package sandbox_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The OpenAPI specs the emulator's answers must match, relative to this package.
const (
	specAPI   = "../../../shared/twilio-oai/twilio_api_v2010.json"
	specVideo = "../../../shared/twilio-oai/twilio_video_v1.json"
)

type spec map[string]any

func loadSpec(t *testing.T, path string) spec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("OpenAPI spec not available: %v", err)
	}
	var s spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return s
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

// responseSchema finds the JSON schema of a response in the spec.
func (s spec) responseSchema(t *testing.T, path, method string, status int) map[string]any {
	t.Helper()
	op := obj(obj(obj(s["paths"])[path])[method])
	resp := obj(obj(op["responses"])[fmt.Sprint(status)])
	schema := obj(obj(obj(resp["content"])["application/json"])["schema"])
	if schema == nil {
		t.Fatalf("spec has no %s %s %d JSON response", method, path, status)
	}
	return schema
}

func (s spec) resolve(schema map[string]any) map[string]any {
	for {
		ref, ok := schema["$ref"].(string)
		if !ok {
			return schema
		}
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		schema = obj(obj(obj(s["components"])["schemas"])[name])
	}
}

var rfc2822 = "Mon, 02 Jan 2006 15:04:05 -0700"

// check reports every way v differs from schema: properties the schema does
// not have, wrong types, nulls where not nullable, enum, pattern, length and
// date formats.
func (s spec) check(v any, schema map[string]any, at string) []string {
	schema = s.resolve(schema)
	if v == nil {
		if schema["nullable"] == true {
			return nil
		}
		return []string{at + ": null but not nullable"}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("%T, want object", v)
			break
		}
		props := obj(schema["properties"])
		if props == nil {
			break // free-form (uri-map…)
		}
		for k, pv := range m {
			ps, ok := props[k]
			if !ok {
				bad("property %q is not in the schema", k)
				continue
			}
			errs = append(errs, s.check(pv, obj(ps), at+"."+k)...)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("%T, want array", v)
			break
		}
		for i, item := range a {
			errs = append(errs, s.check(item, obj(schema["items"]), fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			bad("%v (%T), want integer", v, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			bad("%T, want number", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("%T, want boolean", v)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			bad("%T, want string", v)
			break
		}
		if enum, ok := schema["enum"].([]any); ok {
			found := false
			for _, e := range enum {
				found = found || e == str
			}
			if !found {
				bad("%q not in %v", str, enum)
			}
		}
		if p, ok := schema["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			bad("%q does not match %s", str, p)
		}
		if n, ok := schema["minLength"].(float64); ok && len(str) < int(n) {
			bad("%q shorter than %v", str, n)
		}
		if n, ok := schema["maxLength"].(float64); ok && len(str) > int(n) {
			bad("%q longer than %v", str, n)
		}
		switch schema["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				bad("%q is not ISO 8601: %v", str, err)
			}
		case "date-time-rfc-2822":
			if _, err := time.Parse(rfc2822, str); err != nil {
				bad("%q is not RFC 2822: %v", str, err)
			}
		case "uri":
			if u, err := url.Parse(str); err != nil || !u.IsAbs() {
				bad("%q is not an absolute URI", str)
			}
		}
	default:
		bad("schema without type: %v", schema)
	}
	return errs
}

// TestRESTAnswersMatchOpenAPI compares every REST answer the emulator gives
// with the response schema of the same operation in Twilio's OpenAPI specs.
func TestRESTAnswersMatchOpenAPI(t *testing.T) {
	apiSpec, videoSpec := loadSpec(t, specAPI), loadSpec(t, specVideo)
	e := newEnv(t)
	acct := "/2010-04-01/Accounts/" + testAccount
	post := func(path string, form url.Values, want int) map[string]any {
		t.Helper()
		status, body := e.restForm(http.MethodPost, path, form, testAccount, testToken)
		if status != want {
			t.Fatalf("POST %s = %d %s; want %d", path, status, body, want)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return m
	}
	get := func(path string) map[string]any {
		t.Helper()
		status, body := e.restForm(http.MethodGet, path, nil, testAccount, testToken)
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, status, body)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return m
	}

	room := post("/v1/Rooms", url.Values{"UniqueName": {"visit-S-1"}, "Type": {"group"},
		"StatusCallback": {e.app.url("/twilio/video/status")}, "UnusedRoomTimeout": {"60"}}, http.StatusCreated)
	roomSID, _ := room["sid"].(string)
	if _, err := e.ctl.Join(e.ctx(), "visit-S-1", "pat-1"); err != nil {
		t.Fatal(err)
	}
	parts := get("/v1/Rooms/" + roomSID + "/Participants")
	partSID := ""
	if list, _ := parts["participants"].([]any); len(list) == 1 {
		partSID, _ = obj(list[0])["sid"].(string)
	}
	call := post(acct+"/Calls.json", url.Values{"To": {"+15551230001"}, "From": {ourNumber},
		"Twiml": {"<Response><Pause length=\"600\"/></Response>"}}, http.StatusCreated)
	callSID, _ := call["sid"].(string)
	msg := post(acct+"/Messages.json", url.Values{"To": {"+15551230002"}, "From": {ourNumber}, "Body": {"hi"}}, http.StatusCreated)
	msgSID, _ := msg["sid"].(string)
	svcMsg := post(acct+"/Messages.json", url.Values{"To": {"+15551230002"}, "Body": {"hi"},
		"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"}}, http.StatusCreated)
	failedSID, _ := post(acct+"/Messages.json", url.Values{"To": {"+15005550010"}, "From": {ourNumber}, "Body": {"hi"}},
		http.StatusCreated)["sid"].(string)
	e.waitEvent("undelivered SMS", emuStatus("sms.status", "undelivered", failedSID))

	tests := []struct {
		name       string
		spec       spec
		path, verb string
		status     int
		body       map[string]any
		required   []string
	}{
		{"create room", videoSpec, "/v1/Rooms", "post", 201, room, []string{"sid", "account_sid", "status", "unique_name", "type", "date_created", "url", "links"}},
		{"fetch room by name", videoSpec, "/v1/Rooms/{Sid}", "get", 200, get("/v1/Rooms/visit-S-1"), []string{"sid", "status"}},
		{"list participants", videoSpec, "/v1/Rooms/{RoomSid}/Participants", "get", 200, parts, []string{"participants", "meta"}},
		{"fetch participant", videoSpec, "/v1/Rooms/{RoomSid}/Participants/{Sid}", "get", 200,
			get("/v1/Rooms/" + roomSID + "/Participants/" + partSID), []string{"sid", "room_sid", "identity", "status", "start_time"}},
		{"create call", apiSpec, "/2010-04-01/Accounts/{AccountSid}/Calls.json", "post", 201, call,
			[]string{"sid", "account_sid", "status", "to", "from", "direction", "date_created", "uri", "api_version"}},
		{"fetch call", apiSpec, "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", "get", 200, get(acct + "/Calls/" + callSID + ".json"), []string{"sid", "status"}},
		{"update call", apiSpec, "/2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json", "post", 200,
			post(acct+"/Calls/"+callSID+".json", url.Values{"Status": {"completed"}}, http.StatusOK), []string{"sid", "status", "end_time"}},
		{"create message", apiSpec, "/2010-04-01/Accounts/{AccountSid}/Messages.json", "post", 201, msg,
			[]string{"sid", "account_sid", "status", "to", "from", "body", "direction", "date_created", "uri", "num_segments"}},
		{"create message via service", apiSpec, "/2010-04-01/Accounts/{AccountSid}/Messages.json", "post", 201, svcMsg,
			[]string{"sid", "status", "messaging_service_sid"}},
		{"fetch message", apiSpec, "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", "get", 200,
			get(acct + "/Messages/" + msgSID + ".json"), []string{"sid", "status"}},
		{"fetch undelivered message", apiSpec, "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", "get", 200,
			get(acct + "/Messages/" + failedSID + ".json"), []string{"sid", "status", "error_code", "error_message", "date_sent"}},
		{"end room", videoSpec, "/v1/Rooms/{Sid}", "post", 202,
			post("/v1/Rooms/"+roomSID, url.Values{"Status": {"completed"}}, http.StatusAccepted), []string{"sid", "status", "end_time", "duration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := tt.spec.responseSchema(t, tt.path, tt.verb, tt.status)
			for _, err := range tt.spec.check(any(tt.body), schema, "$") {
				t.Error(err)
			}
			for _, k := range tt.required {
				if tt.body[k] == nil {
					t.Errorf("%s: %q missing or null in %v", tt.name, k, tt.body)
				}
			}
		})
	}

	// Twilio-style errors: {code, message, more_info, status}.
	status, body := e.restForm(http.MethodPost, acct+"/Messages.json", url.Values{"To": {"+15005550004"}, "From": {ourNumber}, "Body": {"x"}}, testAccount, testToken)
	var apiErr map[string]any
	_ = json.Unmarshal(body, &apiErr)
	if status != 400 || apiErr["code"] != float64(21610) || apiErr["status"] != float64(400) ||
		apiErr["message"] == "" || apiErr["more_info"] != "https://www.twilio.com/docs/errors/21610" {
		t.Errorf("opted-out SMS = %d %s; want 400 with code 21610", status, body)
	}
}

// TestSchemaCheckCatchesMismatches keeps the comparison above honest.
func TestSchemaCheckCatchesMismatches(t *testing.T) {
	apiSpec := loadSpec(t, specAPI)
	schema := apiSpec.responseSchema(t, "/2010-04-01/Accounts/{AccountSid}/Calls.json", "post", 201)
	bad := map[string]any{
		"sid":          "XX123",                // pattern and length
		"bogus":        1,                      // not in the schema
		"status":       "weird",                // enum
		"date_created": "2020-01-01T00:00:00Z", // not RFC 2822
		"duration":     12,                     // string in the schema
		"to":           nil,                    // nullable: fine
	}
	errs := apiSpec.check(any(bad), schema, "$")
	if len(errs) < 5 {
		t.Errorf("check(%v) found %d problems %v; want at least 5", bad, len(errs), errs)
	}
}

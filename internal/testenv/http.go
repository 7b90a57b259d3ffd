package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

// Sign returns the X-Twilio-Signature Twilio would send for a POST of params
// to path on the env's public URL.
func (e *Env) Sign(path string, params url.Values) string {
	return twiliosig.Sign(e.Config.Twilio.AuthToken, e.Config.HTTP.PublicBaseURL+path, params)
}

// PostSigned posts a form callback to path signed as Twilio signs it;
// header is extra name, value pairs.
func (e *Env) PostSigned(path string, params url.Values, header ...string) *http.Response {
	e.T.Helper()
	return e.PostForm(path, params, append([]string{twiliosig.Header, e.Sign(path, params)}, header...)...)
}

// PostForm posts a form to path with the given header name, value pairs
// and no signature unless one is among them. The body is closed.
func (e *Env) PostForm(path string, params url.Values, header ...string) *http.Response {
	e.T.Helper()
	header = append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)
	resp, _ := e.Do(http.MethodPost, path, strings.NewReader(params.Encode()), header...)
	return resp
}

// Do sends a request to the app with the given header name, value pairs and
// returns the answer with its body read (and closed).
func (e *Env) Do(method, path string, body io.Reader, header ...string) (*http.Response, []byte) {
	e.T.Helper()
	req, err := http.NewRequest(method, e.URL+path, body)
	if err != nil {
		e.T.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

// APIRaw calls the scheduling API with the bearer token; body is sent as
// is. It returns the status and the raw answer.
func (e *Env) APIRaw(method, path, body string) (int, []byte) {
	e.T.Helper()
	resp, raw := e.Do(method, path, strings.NewReader(body),
		"Authorization", "Bearer "+e.Config.API.Token, "Content-Type", "application/json")
	return resp.StatusCode, raw
}

// API calls the scheduling API with the bearer token and decodes the JSON
// answer into out (when not nil). body is sent as is when a string, else as
// JSON (nil: no body). It returns the status.
func (e *Env) API(method, path string, body any, out any) int {
	e.T.Helper()
	s, ok := body.(string)
	if !ok && body != nil {
		b, _ := json.Marshal(body)
		s = string(b)
	}
	code, raw := e.APIRaw(method, path, s)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.T.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return code
}

// ErrorBody is the API's error answer.
type ErrorBody struct {
	Error struct{ Code, Message, Field string } `json:"error"`
}

// VisitBody is a create request for visit id at 2026-12-01 15:00 UTC in
// America/New_York: provider dr-lee (ProviderPhone), patient pat-8812 Sam
// (PatientPhone).
func VisitBody(id string) map[string]any {
	return map[string]any{
		"id": id, "scheduled_at": "2026-12-01T15:00:00Z", "timezone": "America/New_York",
		"provider": map[string]string{"identity": "dr-lee", "name": "Dr. Lee", "phone": ProviderPhone},
		"patient":  map[string]string{"identity": "pat-8812", "name": "Sam", "phone": PatientPhone},
	}
}

// The phones of VisitBody.
const (
	ProviderPhone = "+15551230001"
	PatientPhone  = "+15551230002"
)

// CreateVisit creates a visit from body through the API and requires 201.
func (e *Env) CreateVisit(body map[string]any) handlers.VisitView {
	e.T.Helper()
	var v handlers.VisitView
	if code := e.API(http.MethodPost, "/v1/visits", body, &v); code != http.StatusCreated {
		e.T.Fatalf("POST /v1/visits = %d; want 201", code)
	}
	return v
}

// Visit reads visit id through the API and requires 200.
func (e *Env) Visit(id string) handlers.VisitView {
	e.T.Helper()
	var v handlers.VisitView
	e.VisitInto(id, &v)
	return v
}

// VisitInto reads visit id through the API into out (any shape of the
// resource) and requires 200.
func (e *Env) VisitInto(id string, out any) {
	e.T.Helper()
	if code := e.API(http.MethodGet, "/v1/visits/"+id, nil, out); code != http.StatusOK {
		e.T.Fatalf("GET /v1/visits/%s = %d; want 200", id, code)
	}
}

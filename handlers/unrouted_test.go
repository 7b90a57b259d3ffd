package handlers_test

import (
	"net/http"
	"testing"

	"github.com/visitflow/visitflow/internal/testenv"
)

// A wrong method on a Twilio route was 404 (as if the route did not
// exist); it is 405 with the Allow header, everywhere.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	e := testenv.New(t)
	for _, c := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{http.MethodGet, "/twilio/video/status", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/twilio/voice/incoming", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/twilio/sms/status", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/visits/V-1/cancel", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/v1/visits/V-1", http.StatusMethodNotAllowed, "GET, PATCH"},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/twilio/nothing-here", http.StatusNotFound, ""},
		{http.MethodGet, "/nothing-here", http.StatusNotFound, ""},
	} {
		resp, body := e.Do(c.method, c.path, nil)
		if resp.StatusCode != c.want || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s = %d Allow %q (%s); want %d Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), body, c.want, c.allow)
		}
	}
}

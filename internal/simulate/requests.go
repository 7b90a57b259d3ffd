package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/visitflow/visitflow/internal/sandbox"
)

// The three HTTP surfaces a simulation talks to: the visitflow API (bearer
// token), the emulator's control and inspection API under /sandbox (no
// auth; sandbox.Client, simulation.emulator), and the emulator's Twilio REST
// API under /sandbox (basic auth with the sandbox credentials).

// API calls the visitflow API with the bearer token; out, when not nil,
// receives the JSON answer.
func (s *simulation) API(ctx context.Context, method, path string, body, out any) error {
	return s.do(ctx, method, path, body, out, func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+s.Token)
	})
}

// inSandbox explains a 404 from the emulator's control API: the server is
// probably not in sandbox mode (there is no /sandbox outside it).
func inSandbox(err error) error {
	if sandbox.StatusCode(err) == http.StatusNotFound {
		return fmt.Errorf("%w (is the server in sandbox mode?)", err)
	}
	return err
}

// EndRoom ends the visit's room through the emulator's REST API, as an
// operator (or Twilio's empty-room timeout) would.
func (s *simulation) EndRoom(ctx context.Context) error {
	return s.twilioREST(ctx, "/v1/Rooms/"+url.PathEscape(s.Visit.Room.SID), url.Values{"Status": {"completed"}})
}

// HangUpCall ends call sid through the emulator's REST API (Status=completed).
func (s *simulation) HangUpCall(ctx context.Context, sid string) error {
	return s.twilioREST(ctx, "/2010-04-01/Accounts/"+url.PathEscape(s.AccountSID)+"/Calls/"+url.PathEscape(sid)+".json",
		url.Values{"Status": {"completed"}})
}

func (s *simulation) do(ctx context.Context, method, path string, body, out any, auth func(*http.Request)) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.BaseURL+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != nil {
		auth(req)
	}
	return s.send(req, out)
}

// twilioREST POSTs form to the emulator's Twilio REST API with the sandbox credentials.
func (s *simulation) twilioREST(ctx context.Context, path string, form url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.BaseURL+"/sandbox"+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.AccountSID, s.AuthToken)
	return s.send(req, nil)
}

func (s *simulation) send(req *http.Request, out any) error {
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 300 {
		hint := ""
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(req.URL.Path, "/sandbox") {
			hint = " (is the server in sandbox mode?)"
		}
		return fmt.Errorf("%s %s: %s: %s%s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(b)), hint)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Path, err)
		}
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/visitflow/visitflow/internal/redisx/redistest"
)

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// walkthroughServer starts `visitflow serve` in sandbox mode on real Redis with
// known API and admin credentials.
func walkthroughServer(t *testing.T) (base string, env map[string]string) {
	addr := freeAddr(t)
	env = map[string]string{
		"VISITFLOW_HTTP_ADDR":            addr,
		"VISITFLOW_HTTP_PUBLIC_BASE_URL": "http://" + addr,
		"VISITFLOW_REDIS_URL":            redistest.ForTest(t),
		"VISITFLOW_REDIS_NAMESPACE":      redistest.Namespace(t),
		"VISITFLOW_API_TOKEN":            "walkthrough-token",
		"VISITFLOW_ADMIN_PASSWORD":       "walkthrough-admin",
	}
	return startServer(t, env), env
}

// TestReadmeWalkthrough does what the README's walk-through does: create a
// visit, sign and post a participant callback with `visitflow sign --post`,
// and see the state change.
func TestReadmeWalkthrough(t *testing.T) {
	base, env := walkthroughServer(t)
	body := `{"id":"V-42","scheduled_at":"2026-12-01T15:00:00Z","timezone":"America/New_York",
	  "provider":{"identity":"dr-lee","name":"Dr. Lee","phone":"+15551230001"},
	  "patient":{"identity":"pat-8812","name":"Sam","phone":"+15551230002"}}`
	if code := apiCall(t, base, http.MethodPost, "/v1/visits", body, nil); code != http.StatusCreated {
		t.Fatalf("create = %d; want 201", code)
	}
	var out bytes.Buffer
	args := []string{"sign", "--post", "--url", base + "/twilio/video/status?visit=V-42",
		"StatusCallbackEvent=participant-connected", "RoomName=visit-V-42",
		"RoomSid=RM00000000000000000000000000000001", "ParticipantSid=PA00000000000000000000000000000001",
		"ParticipantIdentity=pat-8812", "Timestamp=2026-12-01T15:01:00.000Z"}
	if err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "204") {
		t.Fatalf("sign --post printed %q; want 204", out.String())
	}
	var v struct{ State string }
	apiCall(t, base, http.MethodGet, "/v1/visits/V-42", "", &v)
	if v.State != "waiting" {
		t.Fatalf("state after the signed callback = %q; want waiting", v.State)
	}
	// The same callback signed with another token is refused.
	out.Reset()
	args = append([]string{"sign", "--token", "not-the-token"}, args[1:]...)
	if err := run(context.Background(), args, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "403") {
		t.Fatalf("wrongly signed callback printed %q; want 403", out.String())
	}
}

func TestDashboardNeedsAdminAuth(t *testing.T) {
	base, _ := walkthroughServer(t)
	resp, err := http.Get(base + "/admin/queues")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dashboard without auth = %d; want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/admin/queues/api/queues", nil)
	req.SetBasicAuth("admin", "walkthrough-admin")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "queues") {
		t.Fatalf("dashboard API with auth = %d %s; want 200 listing queues", resp.StatusCode, raw)
	}
}

func apiCall(t *testing.T, base, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer walkthrough-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(fmt.Errorf("%s %s: %s: %w", method, path, raw, err))
		}
	}
	return resp.StatusCode
}

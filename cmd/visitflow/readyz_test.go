package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/redisx/redistest"
)

// readyz asks GET /readyz, with the admin credentials when user is set,
// and gives up after limit.
func readyz(t *testing.T, base, user, pass string, limit time.Duration) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Timeout: limit}).Do(req)
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /readyz once told anyone the raw Redis error (addresses, client
// internals), and in a Redis stall took 5 s despite its 2 s timeout, past
// what a load balancer's probe waits.
func TestReadyzDetailIsForAdminsAndAnswersInAStall(t *testing.T) {
	rs := redistest.StartServer(t)
	env := map[string]string{
		"VISITFLOW_HTTP_ADDR":      freeAddr(t),
		"VISITFLOW_REDIS_URL":      rs.URL(),
		"VISITFLOW_API_TOKEN":      "readyz-token",
		"VISITFLOW_ADMIN_PASSWORD": "readyz-admin",
	}
	base := startServer(t, env)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := readyz(t, base, "", "", 10*time.Second); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 200")
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := rs.Pause(); err != nil {
		t.Fatal(err)
	}
	defer rs.Resume()
	// The check's own limit is 2 s; a probe waiting 4.5 s must get an answer.
	code, body := readyz(t, base, "", "", 4500*time.Millisecond)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Redis stalled = %d %s; want 503", code, body)
	}
	for _, leak := range []string{"redis", "127.0.0.1", rs.Addr(), "dial", "timeout", "asynq"} {
		if strings.Contains(strings.ToLower(body), strings.ToLower(leak)) {
			t.Errorf("/readyz without credentials says %q: %s; want no detail", leak, body)
		}
	}
	code, body = readyz(t, base, "admin", "readyz-admin", 4500*time.Millisecond)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: ") {
		t.Errorf("/readyz for the admin = %d %s; want 503 with the reason", code, body)
	}
	if err := rs.Resume(); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/redisx/redistest"
)

// startServer runs `visitflow serve` in-process with env and returns its
// base URL; the server stops when t ends and must exit cleanly.
func startServer(t *testing.T, env map[string]string, serveArgs ...string) string {
	t.Helper()
	t.Chdir(t.TempDir()) // no config.yaml here: defaults + env only
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, serveArgs...), getenv, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run() after shutdown = %v; want nil", err)
		}
	})
	lines := bufio.NewScanner(pr)
	addr := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "visitflow listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("run() exited early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start within 30s")
	}
	return ""
}

func TestEmbeddedRedisStartServesHealthz(t *testing.T) {
	base := startServer(t, map[string]string{"VISITFLOW_HTTP_ADDR": "127.0.0.1:0"})
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d; want 200", resp.StatusCode)
	}
	// Readiness needs the workers to have registered with Redis: await it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("GET /readyz never answered 200")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestInvalidConfigFailsNamingTheKey(t *testing.T) {
	t.Chdir(t.TempDir())
	env := map[string]string{"VISITFLOW_VISITS_NO_SHOW_AFTER": "15x"}
	err := run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "visits.no_show_after") {
		t.Fatalf("run() with a bad duration = %v; want an error naming visits.no_show_after", err)
	}
}

// With real Twilio credentials, start-up refuses what only works against
// the sandbox, in one line naming the key.
func TestLiveModeRefusesSandboxOnlySettings(t *testing.T) {
	live := map[string]string{
		"TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef", "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
		"TWILIO_API_KEY": "SK0123456789abcdef0123456789abcdef", "TWILIO_API_SECRET": "secret",
		"VISITFLOW_TWILIO_FROM_NUMBER": "+15551230000", "VISITFLOW_HTTP_PUBLIC_BASE_URL": "https://visits.example.com",
		"VISITFLOW_API_TOKEN": "t", "VISITFLOW_ADMIN_PASSWORD": "p", "VISITFLOW_HTTP_ADDR": "127.0.0.1:0",
	}
	for _, tt := range []struct{ key, value, want string }{
		{"VISITFLOW_HTTP_PUBLIC_BASE_URL", "http://localhost:8080", "http.public_base_url"},
		{"VISITFLOW_HTTP_PUBLIC_BASE_URL", "http://127.0.0.1:8080", "http.public_base_url"},
		{"VISITFLOW_TWILIO_FROM_NUMBER", "+15005550006", "twilio.from_number"},
		{"TWILIO_API_KEY", "", "twilio.api_key"},
	} {
		t.Chdir(t.TempDir())
		env := map[string]string{}
		for k, v := range live {
			env[k] = v
		}
		env[tt.key] = tt.value
		if tt.value == "" {
			delete(env, "TWILIO_API_SECRET")
		}
		// A server that starts anyway is stopped after a while: nil, a failure.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := run(ctx, []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("run() with %s=%q = %v; want one line naming %s", tt.key, tt.value, err, tt.want)
		}
	}
}

func TestUnknownRoleIsRefused(t *testing.T) {
	err := run(context.Background(), []string{"serve", "--role", "cook"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--role") {
		t.Fatalf("run(--role cook) = %v; want an error about --role", err)
	}
}

// TestRolesSplitAndReadiness runs the web role alone: it is not ready while
// no worker is registered, and becomes ready once a separate worker-role
// process (here: another run) joins the same Redis.
func TestRolesSplitAndReadiness(t *testing.T) {
	env := map[string]string{
		"VISITFLOW_HTTP_ADDR":       freeAddr(t),
		"VISITFLOW_REDIS_URL":       redistest.ForTest(t),
		"VISITFLOW_REDIS_NAMESPACE": redistest.Namespace(t),
		"VISITFLOW_API_TOKEN":       "roles-token",
	}
	base := startServer(t, env, "--role", "web")
	readyz := func() int {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := readyz(); code != http.StatusServiceUnavailable {
		t.Fatalf("web role without workers: /readyz = %d; want 503", code)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--role", "worker"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker run() after shutdown = %v; want nil", err)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for readyz() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 200 after a worker joined")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

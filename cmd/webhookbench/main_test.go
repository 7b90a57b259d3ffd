package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The servers are this test binary started again (main does the same).
func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		if err := serveChild(name); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmallRun keeps the command runnable: a tiny run of every measurement,
// with the Node peer when its packages are installed. The real run is never
// part of `go test ./...`.
func TestSmallRun(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not on PATH")
	}
	args := []string{"-visits", "20", "-warmup", "0", "-conns", "4", "-large-visits", "4", "-guests", "3", "-logs", t.TempDir(),
		"-cpuprofile", t.TempDir() + "/visitflow.pprof"}
	peer := "../../internal/loadgen/expresspeer"
	_, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(peer + "/node_modules/twilio"); err == nil && nodeErr == nil {
		args = append(args, "-express", peer)
	} else {
		t.Log("the Express peer's packages are not installed (npm ci in internal/loadgen/expresspeer): running without it")
		args = append(args, "-express", "")
	}
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("run = %v; output:\n%s", err, out.String())
	}
	for _, want := range []string{"| visitflow | ", "| bare | ", "| visitflow, large visits (3 guests) |", "| visitflow at half its max rate |", "visitflow ÷ bare", "Redis commands per callback"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

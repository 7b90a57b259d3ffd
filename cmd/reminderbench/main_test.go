package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/visitflow/visitflow/internal/redisx/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

// TestSmallRun keeps the benchmark runnable: a tiny run of both measurements.
func TestSmallRun(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"-redis", redistest.ForTest(t), "-namespace", redistest.Namespace(t), "-visits", "30", "-batch", "10", "-due", "20",
		"-window", "1s", "-lead", "2s", "-concurrency", "5"}, &out)
	if err != nil {
		t.Fatalf("run = %v; output:\n%s", err, out.String())
	}
	for _, want := range []string{"create: 30 visits", "30 tasks scheduled", "due: 20 of 20 reminders"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/testenv"
)

// The invite secret is the credential of /v1/join/{invite}: at debug level
// the request log once wrote it out with the path.
func TestRequestLogNeverShowsAnInviteSecret(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := testenv.New(t, testenv.Server(func(_ *testenv.Env, d *handlers.Deps) { d.Log = zap.New(core) }))
	const secret = "s3cr3t-invite-0123456789abcdefghijkl"
	for _, path := range []string{"/v1/join/" + secret, "/join/" + secret} {
		method := http.MethodPost
		if path[1] == 'j' {
			method = http.MethodGet
		}
		e.Do(method, path, nil)
	}
	if logs.Len() == 0 {
		t.Fatal("no request was logged at debug level; the test cannot see the log")
	}
	for _, entry := range logs.All() {
		line := entry.Message
		for _, f := range entry.Context {
			line += " " + f.Key + "=" + f.String
		}
		if strings.Contains(line, secret) {
			t.Errorf("log line %q carries the invite secret", line)
		}
	}
}

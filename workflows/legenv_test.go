package workflows_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
)

// interpreterPhone answers like a human in the sandbox.
const interpreterPhone = "+15551239999"

// newLegEnv is visitflow end to end for the call legs, invites and tokens:
// the HTTP server, real workers, and the emulator playing Twilio with short
// minutes (a Twilio second is 20 ms), the interpreter lines below and rooms
// kept open for the whole test.
func newLegEnv(t *testing.T, opts ...testenv.Option) *testenv.Env {
	t.Helper()
	return testenv.New(t, append([]testenv.Option{
		testenv.WithSandbox(func(o *sandbox.Options) { o.MinuteLength = 1200 * time.Millisecond }),
		testenv.WithWorkers(),
		testenv.Configure(func(cfg *config.Config) {
			cfg.Visits.EmptyRoomTimeout, cfg.Visits.UnusedRoomTimeout = time.Hour, time.Hour
			cfg.Interpreter.RetryBackoff = 100 * time.Millisecond
			cfg.Interpreter.RingTimeout = 5 * time.Second
			cfg.Interpreter.MaxAttempts = 3
			cfg.Interpreter.Lines = map[string]config.InterpreterLine{
				"voyce-es":  {Phone: interpreterPhone, IVR: "ww2ww1234#"},
				"busy-once": {Phone: sandbox.NumberBusyOnce, IVR: "1#"},
				"busy":      {Phone: sandbox.NumberBusy},
				"no-answer": {Phone: sandbox.NumberNoAnswer},
				"failed":    {Phone: sandbox.NumberFailed},
				"machine":   {Phone: sandbox.NumberMachine, IVR: "9#", AMD: true},
				"ivr":       {Phone: sandbox.NumberIVR, IVR: "W2W1#"},
			}
		}),
	}, opts...)...)
}

// createAt creates visit id (testenv.VisitBody) scheduled at at through the API.
func createAt(e *testenv.Env, id string, at time.Time) handlers.VisitView {
	e.T.Helper()
	body := testenv.VisitBody(id)
	body["scheduled_at"] = at.UTC().Format(time.RFC3339)
	return e.CreateVisit(body)
}

// grant is the answer of the token and join routes.
type grant struct {
	Identity  string    `json:"identity"`
	Room      string    `json:"room"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// decodeToken verifies the JWT with the API secret and returns its claims.
func decodeToken(t *testing.T, tok string) (identity, room string, exp time.Time, claims jwt.MapClaims) {
	t.Helper()
	claims = jwt.MapClaims{}
	// The signature is checked; exp and nbf are the tests' to check.
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(testenv.APISecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation())
	if err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	grants, _ := claims["grants"].(map[string]any)
	identity, _ = grants["identity"].(string)
	video, _ := grants["video"].(map[string]any)
	room, _ = video["room"].(string)
	e, err := claims.GetExpirationTime()
	if err != nil || e == nil {
		t.Fatalf("token has no exp: %v", err)
	}
	return identity, room, e.Time, claims
}

var joinLink = regexp.MustCompile(`/join/([A-Za-z0-9_-]+)`)

// join exchanges an invite secret without the bearer token.
func join(e *testenv.Env, secret string) (int, grant) {
	e.T.Helper()
	resp, body := e.Do(http.MethodPost, "/v1/join/"+secret, nil)
	var g grant
	_ = json.Unmarshal(body, &g)
	return resp.StatusCode, g
}

package loadgen_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/workflows"
)

func TestMain(m *testing.M) {
	// The fault tests stop Redis on purpose; go-redis would log every
	// refused dial of the outage.
	redis.SetLogger(quietLogger{})
	os.Exit(redistest.MainWithRedis(m))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

const (
	authToken = "0123456789abcdef0123456789abcdef"
	apiToken  = "load-api-token"
)

// web is one visitflow web replica (handlers.NewServer on real Redis) on a
// real TCP port.
type web struct {
	srv  *httptest.Server
	conn *redisx.Conn
}

// startWeb starts a replica on redisURL whose public_base_url is public
// (its own URL when empty).
func startWeb(t testing.TB, redisURL, public string) *web {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cfg := config.Default()
	cfg.Twilio.AccountSID = "AC00000000000000000000000000000000"
	cfg.Twilio.AuthToken = authToken
	cfg.API.Token = apiToken
	engine := workflows.New(workflows.Deps{
		Store: store.New(conn.Client), Queue: asynq.NewClientFromRedisClient(conn.Client),
		Deleter: asynq.NewInspectorFromRedisClient(conn.Client), Config: cfg,
	})
	w := &web{srv: httptest.NewUnstartedServer(nil), conn: conn}
	w.srv.Start()
	t.Cleanup(w.srv.Close)
	cfg.HTTP.PublicBaseURL = public
	if public == "" {
		cfg.HTTP.PublicBaseURL = w.srv.URL
	}
	w.srv.Config.Handler = handlers.NewServer(handlers.Deps{Engine: engine, Config: cfg})
	return w
}

type participant struct {
	SID            string  `json:"sid"`
	ConnectedAt    *string `json:"connected_at"`
	DisconnectedAt *string `json:"disconnected_at"`
}

// getVisit reads visit id through the API into out (any shape of the resource).
func getVisit(t testing.TB, baseURL, id string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, baseURL+"/v1/visits/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/visits/%s = %d", id, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// participants reads a visit's participants through the API, by SID.
func participants(t testing.TB, baseURL, id string) map[string]participant {
	t.Helper()
	var v struct {
		Participants []participant `json:"participants"`
	}
	getVisit(t, baseURL, id, &v)
	out := map[string]participant{}
	for _, p := range v.Participants {
		out[p.SID] = p
	}
	return out
}

// checkAcked fails t for every acknowledged callback whose fact is missing.
func checkAcked(t testing.TB, baseURL string, acked []loadgen.Callback) {
	t.Helper()
	byVisit := map[string][]loadgen.Callback{}
	for _, c := range acked {
		byVisit[c.VisitID] = append(byVisit[c.VisitID], c)
	}
	var lost []string
	for id, cs := range byVisit {
		ps := participants(t, baseURL, id)
		for _, c := range cs {
			p, ok := ps[c.ParticipantSID]
			switch {
			case !ok:
				lost = append(lost, fmt.Sprintf("%s %s", c.Event, c.ParticipantSID))
			case c.Event == "participant-disconnected" && p.DisconnectedAt == nil:
				lost = append(lost, fmt.Sprintf("%s %s", c.Event, c.ParticipantSID))
			}
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged callbacks are not in their visits: %v", len(lost), lost)
	}
}

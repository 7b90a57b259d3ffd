package loadgen_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
)

func TestMain(m *testing.M) {
	// The fault tests stop Redis on purpose; go-redis would log every
	// refused dial of the outage.
	redis.SetLogger(quietLogger{})
	os.Exit(redistest.MainWithRedis(m))
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// The credentials of every testenv replica.
const (
	authToken = testenv.AuthToken
	apiToken  = testenv.APIToken
)

// startWeb starts one visitflow web replica (the real HTTP edge on real
// Redis, no workers) on redisURL in namespace, whose public_base_url is
// public (its own URL when empty). Replicas of one deployment share a
// namespace (redistest.Namespace).
func startWeb(t testing.TB, redisURL, namespace, public string) *testenv.Env {
	t.Helper()
	return testenv.New(t, testenv.RedisURL(redisURL), testenv.Configure(func(c *config.Config) {
		c.Redis.Namespace = namespace
		if public != "" {
			c.HTTP.PublicBaseURL = public
		}
	}))
}

type participant struct {
	SID            string  `json:"sid"`
	ConnectedAt    *string `json:"connected_at"`
	DisconnectedAt *string `json:"disconnected_at"`
}

// participants reads a visit's participants through the API, by SID.
func participants(w *testenv.Env, id string) map[string]participant {
	w.T.Helper()
	var v struct {
		Participants []participant `json:"participants"`
	}
	w.VisitInto(id, &v)
	out := map[string]participant{}
	for _, p := range v.Participants {
		out[p.SID] = p
	}
	return out
}

// checkAcked fails t for every acknowledged callback whose fact is missing.
func checkAcked(t testing.TB, w *testenv.Env, acked []loadgen.Callback) {
	t.Helper()
	byVisit := map[string][]loadgen.Callback{}
	for _, c := range acked {
		byVisit[c.VisitID] = append(byVisit[c.VisitID], c)
	}
	var lost []string
	for id, cs := range byVisit {
		ps := participants(w, id)
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

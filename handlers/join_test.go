package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// patientPhone is visitBody's patient number.
const patientPhone = "+15551230002"

func TestReminderLinkLetsThePatientJoinAsThemselves(t *testing.T) {
	e := newLegEnv(t, nil)
	// Inside the smallest reminder offset: the starting-soon reminder goes
	// out at once (quiet hours do not hold it back).
	e.createAt("V-plink", time.Now().Add(5*time.Minute).Truncate(time.Second))
	var body string
	e.eventually("V-plink", "the reminder SMS", func(legVisit) bool {
		msgs := e.messagesTo(patientPhone)
		if len(msgs) == 1 {
			body = msgs[0].Body
		}
		return len(msgs) == 1
	})
	if !strings.Contains(body, "http://localhost:8080/join/") {
		t.Fatalf("reminder %q has no join link from visits.join_url", body)
	}
	m := joinLink.FindStringSubmatch(body)
	if m == nil || len(m[1]) < 22 || strings.Contains(m[1], "V-plink") {
		t.Fatalf("reminder %q: join token %v; want a secret of at least 128 bits, not the visit id", body, m)
	}
	secret := m[1]

	code, g := e.join(secret)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/join/{reminder token} = %d; want 200", code)
	}
	identity, room, _, _ := decodeToken(t, g.Token)
	if identity != "pat-8812" || g.Identity != "pat-8812" || room != "visit-V-plink" || g.Room != "visit-V-plink" {
		t.Fatalf("patient link token: identity %q room %q (answer %+v); want pat-8812 in visit-V-plink", identity, room, g)
	}
	// Joining with it counts as the patient arriving.
	if code := e.control(http.MethodPost, "/rooms/visit-V-plink/participants", map[string]string{"identity": identity, "kind": "browser"}, nil); code >= 300 {
		t.Fatalf("patient joining the sandbox room = %d", code)
	}
	v := e.eventually("V-plink", "the patient waiting", func(v legVisit) bool { return v.State == "waiting" })
	if len(v.Participants) != 1 || v.Participants[0].Role != "patient" {
		t.Fatalf("participants %+v; want the patient", v.Participants)
	}

	// The secret is nowhere but in the SMS: not in Redis (visit, timeline,
	// task payloads) and not in the visit resource.
	assertNotInRedis(t, e, secret)
	raw, _ := json.Marshal(e.legVisit("V-plink"))
	if strings.Contains(string(raw), secret) {
		t.Fatal("GET /v1/visits shows the join secret")
	}

	e.api(http.MethodPost, "/v1/visits/V-plink/cancel", nil, nil)
	if code, _ := e.join(secret); code != http.StatusGone {
		t.Fatalf("patient link after cancel = %d; want 410", code)
	}
}

// assertNotInRedis fails when any Redis value or key holds s.
func assertNotInRedis(t *testing.T, e *legEnv, s string) {
	t.Helper()
	ctx := context.Background()
	rdb := e.conn.Client
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var vals []string
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			vals = []string{rdb.Get(ctx, k).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "list":
			vals = rdb.LRange(ctx, k, 0, -1).Val()
		case "set":
			vals = rdb.SMembers(ctx, k).Val()
		case "zset":
			vals = rdb.ZRange(ctx, k, 0, -1).Val()
		case "stream":
			for _, m := range rdb.XRange(ctx, k, "-", "+").Val() {
				for f, v := range m.Values {
					vals = append(vals, f, toString(v))
				}
			}
		}
		vals = append(vals, k)
		for _, v := range vals {
			if strings.Contains(v, s) {
				t.Fatalf("Redis key %s holds the join secret", k)
			}
		}
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

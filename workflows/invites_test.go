package workflows_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/testenv"
)

// invite creates an invite and returns its secret, read from the SMS.
func invite(e *testenv.Env, id, phone string) (inviteView, string) {
	e.T.Helper()
	var inv inviteView
	if code := e.API(http.MethodPost, "/v1/visits/"+id+"/invites",
		map[string]string{"phone": phone, "name": "Alex", "role": "guest"}, &inv); code != http.StatusCreated {
		e.T.Fatalf("POST invites = %d; want 201", code)
	}
	msgs := e.SMSTo(phone)
	if len(msgs) != 1 {
		e.T.Fatalf("SMS to the guest = %+v; want one", msgs)
	}
	m := joinLink.FindStringSubmatch(msgs[0].Body)
	if m == nil {
		e.T.Fatalf("invite SMS %q has no join link", msgs[0].Body)
	}
	return inv, m[1]
}

type inviteView struct {
	ID        string    `json:"id"`
	Identity  string    `json:"identity"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expires_at"`
}

func TestInvitesExpireAndDieOnCancel(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC())
	e := newLegEnv(t, testenv.WithClock(clk))
	at := clk.Now().Add(30 * time.Minute).Truncate(time.Second)
	createAt(e, "V-inv", at)
	createAt(e, "V-inv2", at)

	inv, secret := invite(e, "V-inv", "+15557770001")
	if len(secret) < 22 { // 22 base64url characters = 132 bits
		t.Fatalf("invite secret %q is shorter than 128 bits", secret)
	}
	for i := 0; i < 2; i++ { // a replay inside the window works
		code, g := join(e, secret)
		if code != http.StatusOK {
			t.Fatalf("join #%d = %d; want 200", i+1, code)
		}
		identity, room, exp, _ := decodeToken(t, g.Token)
		if identity != inv.Identity || !strings.HasPrefix(identity, "guest-") || room != "visit-V-inv" || !exp.Equal(at.Add(2*time.Hour)) {
			t.Fatalf("guest token identity %q room %q exp %v; want %s in visit-V-inv until %v", identity, room, exp, inv.Identity, at.Add(2*time.Hour))
		}
	}
	// Only a hash of the secret is stored anywhere in Redis.
	for _, k := range e.AllKeys("*") {
		if s, err := e.Conn.Client.Get(context.Background(), k).Result(); err == nil && strings.Contains(s, secret) {
			t.Fatalf("Redis key %s holds the invite secret", k)
		}
		if strings.Contains(k, secret) {
			t.Fatalf("Redis key %s names the invite secret", k)
		}
	}
	// A guest in the room never counts as patient or provider.
	if _, err := e.Sandbox.Client.JoinAs(context.Background(), "visit-V-inv", inv.Identity, sandbox.ParticipantBrowser); err != nil {
		t.Fatalf("guest joining the sandbox room: %v", err)
	}
	e.WaitEvent("the guest connected", testenv.ParticipantConnected(inv.Identity))
	v := e.WaitVisit("V-inv", "the guest listed", func(v handlers.VisitView) bool { return len(v.Participants) == 1 })
	if v.State != "scheduled" || v.Participants[0].Role != "guest" {
		t.Fatalf("with only the guest: state %s, participants %+v; want scheduled and role guest", v.State, v.Participants)
	}

	if code, _ := join(e, "not-an-invite-secret-at-all"); code != http.StatusNotFound {
		t.Fatalf("join with an unknown secret = %d; want 404", code)
	}
	var errBody testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits/V-inv/invites", map[string]string{"phone": "555"}, &errBody); code != http.StatusBadRequest || errBody.Error.Field != "phone" {
		t.Fatalf("invite with a bad phone = %d %+v; want 400 naming phone", code, errBody)
	}

	// Cancelling kills the invites of that visit.
	_, secret2 := invite(e, "V-inv2", "+15557770002")
	if code, _ := join(e, secret2); code != http.StatusOK {
		t.Fatalf("join before cancel = %d; want 200", code)
	}
	e.API(http.MethodPost, "/v1/visits/V-inv2/cancel", nil, nil)
	if code, _ := join(e, secret2); code != http.StatusGone {
		t.Fatalf("join after cancel = %d; want 410", code)
	}

	// After the visit window the invite is gone.
	clk.Set(at.Add(2*time.Hour + time.Second))
	if code, _ := join(e, secret); code != http.StatusGone {
		t.Fatalf("join after the visit window = %d; want 410", code)
	}
}

func TestReminderLinkLetsThePatientJoinAsThemselves(t *testing.T) {
	e := newLegEnv(t)
	// Inside the smallest reminder offset: the starting-soon reminder goes
	// out at once (quiet hours do not hold it back).
	createAt(e, "V-plink", time.Now().Add(5*time.Minute).Truncate(time.Second))
	var body string
	e.Eventually("the reminder SMS", func() bool {
		msgs := e.SMSTo(patientPhone)
		if len(msgs) == 1 {
			body = msgs[0].Body
		}
		return len(msgs) == 1
	})
	if !strings.Contains(body, e.URL+"/join/") {
		t.Fatalf("reminder %q has no join link from visits.join_url", body)
	}
	m := joinLink.FindStringSubmatch(body)
	if m == nil || len(m[1]) < 22 || strings.Contains(m[1], "V-plink") {
		t.Fatalf("reminder %q: join token %v; want a secret of at least 128 bits, not the visit id", body, m)
	}
	secret := m[1]

	code, g := join(e, secret)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/join/{reminder token} = %d; want 200", code)
	}
	identity, room, _, _ := decodeToken(t, g.Token)
	if identity != "pat-8812" || g.Identity != "pat-8812" || room != "visit-V-plink" || g.Room != "visit-V-plink" {
		t.Fatalf("patient link token: identity %q room %q (answer %+v); want pat-8812 in visit-V-plink", identity, room, g)
	}
	// Joining with it counts as the patient arriving.
	if _, err := e.Sandbox.Client.JoinAs(context.Background(), "visit-V-plink", identity, sandbox.ParticipantBrowser); err != nil {
		t.Fatalf("patient joining the sandbox room: %v", err)
	}
	v := e.WaitVisit("V-plink", "the patient waiting", func(v handlers.VisitView) bool { return v.State == "waiting" })
	if len(v.Participants) != 1 || v.Participants[0].Role != "patient" {
		t.Fatalf("participants %+v; want the patient", v.Participants)
	}

	// The secret is nowhere but in the SMS: not in Redis (visit, timeline,
	// task payloads) and not in the visit resource.
	assertNotInRedis(t, e, secret)
	raw, _ := json.Marshal(e.Visit("V-plink"))
	if strings.Contains(string(raw), secret) {
		t.Fatal("GET /v1/visits shows the join secret")
	}

	e.API(http.MethodPost, "/v1/visits/V-plink/cancel", nil, nil)
	if code, _ := join(e, secret); code != http.StatusGone {
		t.Fatalf("patient link after cancel = %d; want 410", code)
	}
}

// assertNotInRedis fails when any Redis value or key holds s.
func assertNotInRedis(t *testing.T, e *testenv.Env, s string) {
	t.Helper()
	ctx := context.Background()
	rdb := e.Conn.Client
	for _, k := range e.AllKeys("*") { // every node of a Cluster
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

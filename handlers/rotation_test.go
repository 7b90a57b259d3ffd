package handlers_test

import (
	"net/http"
	"testing"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

// With one accepted auth token, rotating it in Twilio broke every webhook
// until the redeploy. twilio.secondary_auth_token is accepted alongside
// twilio.auth_token, and a sub-account's callbacks validate with its own
// token from twilio.subaccount_tokens.
func TestCallbacksSignedWithEitherTokenOfARotation(t *testing.T) {
	const (
		secondary = "fedcba9876543210fedcba9876543210"
		sub       = "ACffffffffffffffffffffffffffffffff"
		subToken  = "5ub5ub5ub5ub5ub5ub5ub5ub5ub5ub5u"
		random    = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
	)
	e := testenv.New(t, testenv.Configure(func(c *config.Config) {
		c.Twilio.SecondaryAuthToken = secondary
		c.Twilio.SubaccountTokens = map[string]string{sub: subToken}
	}))
	e.CreateVisit(testenv.VisitBody("V-rot"))
	path := "/twilio/video/status?visit=V-rot"
	post := func(token, accountSid, sid, identity string, min int) int {
		p := join(sid, identity, min).params("visit-V-rot")
		p.Set("AccountSid", accountSid)
		return e.PostForm(path, p, twiliosig.Header, twiliosig.Sign(token, e.URL+path, p)).StatusCode
	}
	main := testenv.AccountSID
	cases := []struct {
		name              string
		token, accountSid string
		sid, identity     string
		want              int
	}{
		{"primary", testenv.AuthToken, main, "PA1", "pat-8812", http.StatusNoContent},
		{"secondary", secondary, main, "PA2", "guest-1", http.StatusNoContent},
		{"random token", random, main, "PA3", "guest-2", http.StatusForbidden},
		{"sub-account token for its AccountSid", subToken, sub, "PA4", "guest-3", http.StatusNoContent},
		{"sub-account token for another AccountSid", subToken, main, "PA5", "guest-4", http.StatusForbidden},
		{"random token for the sub-account", random, sub, "PA6", "guest-5", http.StatusForbidden},
	}
	for i, c := range cases {
		if got := post(c.token, c.accountSid, c.sid, c.identity, i); got != c.want {
			t.Errorf("%s: callback = %d; want %d", c.name, got, c.want)
		}
	}
	v := e.Visit("V-rot")
	seen := map[string]bool{}
	for _, p := range v.Participants {
		seen[p.SID] = true
	}
	for _, c := range cases {
		if want := c.want == http.StatusNoContent; seen[c.sid] != want {
			t.Errorf("%s: participant %s recorded = %v; want %v", c.name, c.sid, seen[c.sid], want)
		}
	}
}

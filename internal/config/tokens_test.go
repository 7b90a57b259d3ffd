package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestAPITokensFromFileAndEnv(t *testing.T) {
	path := writeFile(t, "api:\n  token: main-secret\n  tokens:\n    - {name: ehr, token: ehr-secret}\n    - name: cron\n      token: cron-secret\n")
	c, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []APIToken{{Name: "ehr", Token: "ehr-secret"}, {Name: "cron", Token: "cron-secret"}}
	if !reflect.DeepEqual(c.API.Tokens, want) {
		t.Errorf("api.tokens from the file = %+v; want %+v", c.API.Tokens, want)
	}
	s := c.String()
	for _, secret := range []string{"main-secret", "ehr-secret", "cron-secret"} {
		if strings.Contains(s, secret) {
			t.Errorf("String() shows the token %q:\n%s", secret, s)
		}
	}
	if !strings.Contains(s, "name: ehr") {
		t.Errorf("String() does not name the tokens:\n%s", s)
	}

	c, err = Load(path, env(map[string]string{"VISITFLOW_API_TOKENS": "billing:b-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := []APIToken{{Name: "billing", Token: "b-secret"}}; !reflect.DeepEqual(c.API.Tokens, want) {
		t.Errorf("api.tokens with VISITFLOW_API_TOKENS = %+v; want %+v (the environment replaces the list)", c.API.Tokens, want)
	}
}

func TestAPITokensRefused(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"ehr", "api.tokens"},                    // no colon
		{"ehr:a,ehr:b", `"ehr" is used twice`},   // duplicate name
		{"default:a", `"default" is used twice`}, // api.token's name
		{"ehr:a,cron:a", "configured twice"},     // duplicate token
		{"e{h}r:a", "api.tokens: [0].name"},      // braces
		{"ehr:", "token is required"},            // empty token
		{"ehr:main-secret", "configured twice"},  // equals api.token
	} {
		_, err := Load(writeFile(t, "api:\n  token: main-secret\n"), env(map[string]string{"VISITFLOW_API_TOKENS": tt.env}))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("VISITFLOW_API_TOKENS=%q: Load error = %v; want one containing %q", tt.env, err, tt.want)
		}
	}
}

func TestNamespaceAndTimezoneRefused(t *testing.T) {
	for k, v := range map[string]string{
		"VISITFLOW_REDIS_NAMESPACE": "a{b}",
		"VISITFLOW_BOARD_TIMEZONE":  "Mars/Olympus",
		"VISITFLOW_BOARD_PAGE_SIZE": "0",
		"VISITFLOW_AUDIT_RETENTION": "1h",
	} {
		if _, err := Load(writeFile(t, ""), env(map[string]string{k: v})); err == nil {
			t.Errorf("Load with %s=%q succeeded; want an error naming the key", k, v)
		}
	}
}

package config

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// A namespace and a token name end up in Redis key and queue names and in
// audit records: no braces (they would move Cluster's hash tag), no
// separators that could be mistaken for structure.
var plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func namespace(s string) error {
	if !plainName.MatchString(s) {
		return fmt.Errorf("%q: want letters, digits, \"-\", \"_\" or \".\" (at most 64, starting with a letter or digit)", s)
	}
	return nil
}

// apiTokens checks api.tokens: every entry named and with a token, names
// and tokens unique (api.token included), so a request maps to one name.
func apiTokens(a API) error {
	names := map[string]bool{DefaultTokenName: true}
	tokens := map[string]bool{}
	if a.Token != "" {
		tokens[a.Token] = true
	}
	for i, t := range a.Tokens {
		if err := namespace(t.Name); err != nil {
			return fmt.Errorf("[%d].name %w", i, err)
		}
		if names[t.Name] {
			return fmt.Errorf("[%d].name %q is used twice (%q is api.token's)", i, t.Name, DefaultTokenName)
		}
		names[t.Name] = true
		if t.Token == "" {
			return fmt.Errorf("[%d] (%s): token is required", i, t.Name)
		}
		if tokens[t.Token] {
			return fmt.Errorf("[%d] (%s): the same token is configured twice", i, t.Name)
		}
		tokens[t.Token] = true
	}
	return nil
}

// DefaultTokenName is the name the audit trail records for api.token.
const DefaultTokenName = "default"

func timezone(s string) error {
	if _, err := time.LoadLocation(s); err != nil {
		return errors.New("unknown time zone " + fmt.Sprintf("%q", s) + " (want an IANA name such as America/New_York)")
	}
	return nil
}

func atLeast(d, lo time.Duration) error {
	if d < lo {
		return fmt.Errorf("must be at least %s, got %s", formatDuration(lo), formatDuration(d))
	}
	return nil
}

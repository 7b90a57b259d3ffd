package handlers

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/visitflow/visitflow/internal/config"
)

// apiTokens are the bearer tokens /v1 accepts, each with the name the
// audit trail records: api.token as config.DefaultTokenName, and api.tokens.
// Only SHA-256 digests are kept, and match compares digests, which all
// have the same length: neither which token matched nor how long the
// tokens are shows in the time a comparison takes.
type apiTokens []namedToken

type namedToken struct {
	name   string
	digest [sha256.Size]byte
}

func newAPITokens(c config.API) apiTokens {
	var ts apiTokens
	if c.Token != "" {
		ts = append(ts, namedToken{config.DefaultTokenName, sha256.Sum256([]byte(c.Token))})
	}
	for _, t := range c.Tokens {
		if t.Token != "" {
			ts = append(ts, namedToken{t.Name, sha256.Sum256([]byte(t.Token))})
		}
	}
	return ts
}

// match returns the name of the token got is, comparing with every token.
func (ts apiTokens) match(got string) (string, bool) {
	d := sha256.Sum256([]byte(got))
	name, found := "", false
	for _, t := range ts {
		if subtle.ConstantTimeCompare(d[:], t.digest[:]) == 1 {
			name, found = t.name, true
		}
	}
	return name, found
}

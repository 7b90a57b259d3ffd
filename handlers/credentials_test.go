package handlers

import (
	"strings"
	"testing"
)

// secretEqual must decide on equal-length digests: comparing the raw
// strings with subtle.ConstantTimeCompare returns at once on a length
// mismatch, which tells a prober the token's length. (Timing itself is not
// asserted here; what is pinned is that the comparison never sees the
// lengths.)
func TestSecretEqualComparesDigestsNotLengths(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		got  string
		want bool
	}{
		{token, true},
		{"", false},
		{token[:31], false},
		{token + "0", false},
		{strings.ToUpper(token), false},
		{strings.Repeat("x", 4096), false},
	} {
		if got := secretEqual(c.got, token); got != c.want {
			t.Errorf("secretEqual(%.40q, token) = %v; want %v", c.got, got, c.want)
		}
	}
	if a, b := credentialDigest(""), credentialDigest(strings.Repeat("x", 4096)); len(a) != len(b) {
		t.Errorf("digests of a short and a long credential have lengths %d and %d; want equal", len(a), len(b))
	}
}

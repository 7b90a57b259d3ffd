package visit

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidIDAcceptsExactlyTheContractsCharset(t *testing.T) {
	want := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	cases := []string{"", "V-1", "a_b-C9", strings.Repeat("x", 64), strings.Repeat("x", 65), "V 1", "V/1", "V.1",
		"visit{1}", "é", "V-1\n", "-", "_", "0"}
	for c := 0; c < 256; c++ {
		cases = append(cases, "V"+string(rune(c)), string([]byte{byte(c)}))
	}
	for _, id := range cases {
		if got := ValidID(id); got != want.MatchString(id) {
			t.Errorf("ValidID(%q) = %v; want %v", id, got, !got)
		}
	}
}

package board

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaskPhone shows a phone number as the contract's admin pages do:
// "+15551230002" → "+1•••••••0002". The country code's first digit and the
// last four digits stay, enough to tell two numbers apart on a call with the
// patient; the number of dots is fixed so the length is not revealed either.
// Numbers too short to keep anything show as dots only.
func MaskPhone(p string) string {
	if p == "" {
		return ""
	}
	if len(p) < 8 || !strings.HasPrefix(p, "+") {
		return "•••••••"
	}
	return p[:2] + "•••••••" + p[len(p)-4:]
}

// MaskName shows a name as its initials: "Dr. Jane Lee" → "D. J. L.".
func MaskName(name string) string {
	var out []string
	for _, w := range strings.Fields(name) {
		r, _ := utf8.DecodeRuneInString(w)
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			out = append(out, string(unicode.ToUpper(r))+".")
		}
	}
	return strings.Join(out, " ")
}

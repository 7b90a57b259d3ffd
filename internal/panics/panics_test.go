package panics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/visitflow/visitflow/internal/panics"
)

func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

func TestDescribeKeepsTheRuntimesWordsAndWithholdsValues(t *testing.T) {
	var m map[string]int
	var p *struct{ Name string }
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"nil map", recovered(func() { m["x"] = 1 }), "assignment to entry in nil map"},
		{"nil pointer", recovered(func() { _ = p.Name }), "nil pointer dereference"},
		{"index", recovered(func() { _ = []int{}[len(m)+3] }), "index out of range [3] with length 0"},
		{"string", recovered(func() { panic("cannot text +15551230002 (Sam)") }), "panic with a string (value withheld"},
		{"error", recovered(func() { panic(errors.New("patient Sam +15551230002")) }), "panic with a *errors.errorString"},
		{"struct", recovered(func() { panic(struct{ Phone string }{"+15551230002"}) }), "panic with a struct { Phone string }"},
	}
	for _, c := range cases {
		got := panics.Describe(c.v)
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: Describe = %q; want it to contain %q", c.name, got, c.want)
		}
		if strings.Contains(got, "+1555") || strings.Contains(got, "Sam") {
			t.Errorf("%s: Describe = %q shows the value", c.name, got)
		}
	}
}

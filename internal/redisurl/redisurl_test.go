package redisurl

import (
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	tests := []struct{ url, want string }{
		{"", ""},
		{"redis://localhost:6379/0", "redis://localhost:6379/0"},
		{"redis://:s3cret@h:1/0", "redis://:****@h:1/0"},
		{"redis://user:s3cret@h:1/0", "redis://user:****@h:1/0"},
		{"redis://user@h:1/0", "redis://user@h:1/0"},
		{"rediss://u:s3cret@h:1", "rediss://u:****@h:1"},
		{"redis://u:s3/c@ret@h:1/2", "redis://u:****@h:1/2"},
		{"redis://u:s3?cr#et@h:1/2", "redis://u:****@h:1/2"},
		{"redis-cluster://u:s3cret@h1:1,h2:2", "redis-cluster://u:****@h1:1,h2:2"},
		{"redis-sentinel://s3cret@s1:1,s2:2/m/0", "redis-sentinel://****@s1:1,s2:2/m/0"},
		{"redis-sentinel://u:s3cret@s1:1/m", "redis-sentinel://u:****@s1:1/m"},
		{"unknown://s3cret@h", "unknown://****@h"},
		{"s3cret@h:1", "****@h:1"},
	}
	for _, tt := range tests {
		if got := Mask(tt.url); got != tt.want {
			t.Errorf("Mask(%q) = %q; want %q", tt.url, got, tt.want)
		}
	}
}

// FuzzMaskURL checks that exactly the password is replaced, whatever it
// contains, in every URL form.
func FuzzMask(f *testing.F) {
	for _, s := range []string{"s3cret", "p@ss", "a/b?c#d", "with:colon", "%41%42", "x,y@z", "****"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pass string) {
		forms := [][2]string{
			{"redis://user:", "@host:6379/1"},
			{"rediss://:", "@host:6379"},
			{"redis-cluster://u:", "@h1:1,h2:2"},
			{"redis-sentinel://u:", "@s1:1,s2:2/master/0"},
		}
		if !strings.Contains(pass, ":") {
			// With a colon the bare sentinel form reads as user:pass.
			forms = append(forms, [2]string{"redis-sentinel://", "@s1:1,s2:2/master/0"})
		}
		for _, f := range forms {
			raw := f[0] + pass + f[1]
			if got, want := Mask(raw), f[0]+"****"+f[1]; got != want {
				t.Errorf("Mask(%q) = %q; want %q", raw, got, want)
			}
		}
	})
}

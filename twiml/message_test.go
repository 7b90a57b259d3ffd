package twiml

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s:\ngot  %s\nwant %s", name, got, want)
	}
}

func TestMessagingResponse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replies []string
	}{
		{"message_empty", nil},
		{"message_one", []string{"Reply STOP to unsubscribe."}},
		{"message_escaped", []string{`Tom & Jerry <say> "hi"`, "second"}},
	} {
		t.Run(tc.name, func(t *testing.T) { golden(t, tc.name, MessagingResponse(tc.replies...)) })
	}
}

package twiml_test

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visitflow/visitflow/twiml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// documents is every TwiML document visitflow returns, as its builder makes it.
var documents = []struct {
	name string
	doc  string
}{
	{"bridge", twiml.Bridge("ww2ww1234#", "visit-V-42", "interpreter-V-42")},
	{"bridge-no-ivr", twiml.Bridge("", "visit-V-42", "interpreter-V-42")},
	{"bridge-one-second-pauses", twiml.Bridge("W2W1234#", "visit-V-42", "interpreter-V-42")},
	{"hangup", twiml.HangUp()},
	{"ask-pin", twiml.AskPIN(twiml.PINPrompt{Action: "https://hooks.example.com/twilio/voice/pin?try=1&tries=3", Digits: 9})},
	{"ask-pin-retry", twiml.AskPIN(twiml.PINPrompt{Action: "https://hooks.example.com/twilio/voice/pin?try=2&tries=3", Digits: 9, Retry: true})},
	{"ask-pin-hold", twiml.AskPIN(twiml.PINPrompt{Action: "https://hooks.example.com/twilio/voice/pin?try=1&tries=1", Digits: 9, Hold: 30})},
	{"goodbye", twiml.Goodbye("Sorry, that PIN was not recognised. Goodbye.")},
	{"join-room", twiml.JoinRoom("visit-V-42", "dialin-V-42")},
	{"hold", twiml.Hold("https://hooks.example.com/twilio/voice/dialin/connect?visit=V-42&hold=1", 3)},
	{"escaping", twiml.Goodbye(`Your visit is at 10:00 <AM> & "soon"`)},
	{"message-empty", string(twiml.MessagingResponse())},
	{"message-one", string(twiml.MessagingResponse("Reply STOP to unsubscribe."))},
	{"message-escaped", string(twiml.MessagingResponse(`Tom & Jerry <say> "hi"`, "second"))},
}

func TestGolden(t *testing.T) {
	for _, d := range documents {
		t.Run(d.name, func(t *testing.T) {
			path := filepath.Join("testdata", d.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(d.doc+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./twiml -update to create it)", err)
			}
			if got := d.doc + "\n"; got != string(want) {
				t.Errorf("%s:\n got %s\nwant %s", d.name, got, want)
			}
		})
	}
}

// TestWellFormed parses every document back: Twilio refuses a document that
// is not XML with a <Response> root (error 12100).
func TestWellFormed(t *testing.T) {
	for _, d := range documents {
		var root struct {
			XMLName xml.Name
			Inner   string `xml:",innerxml"`
		}
		if err := xml.Unmarshal([]byte(d.doc), &root); err != nil {
			t.Errorf("%s: %v", d.name, err)
			continue
		}
		// Only the empty SMS answer may be empty: it means "reply nothing".
		empty := strings.TrimSpace(root.Inner) == "" && d.name != "message-empty"
		if root.XMLName.Local != "Response" || empty {
			t.Errorf("%s: root <%s> with %q; want a non-empty <Response>", d.name, root.XMLName.Local, root.Inner)
		}
	}
}

package sandbox_test

import (
	"net/url"
	"testing"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

// An IVR menu is long recorded speech: under MachineDetection Twilio calls
// it a machine, and the call's Url is fetched only once detection is over.
func TestAnsweringMachineDetectionJudgesTheGreeting(t *testing.T) {
	for _, tt := range []struct {
		to, amd, want string
	}{
		{sandbox.NumberIVR, "Enable", "machine_start"},
		{sandbox.NumberIVR, "DetectMessageEnd", "machine_end_silence"},
		{sandbox.NumberMachine, "Enable", "machine_start"},
		{sandbox.NumberMachine, "DetectMessageEnd", "machine_end_beep"},
		{"+15551230003", "Enable", "human"},
		{sandbox.NumberIVR, "", ""}, // no detection: the menu is just answered
	} {
		t.Run(tt.to+"/"+tt.amd, func(t *testing.T) {
			e := newEnv(t)
			e.app.answer("/twilio/voice/bridge", func(url.Values) string { return `<Response><Hangup/></Response>` })
			call, err := e.api.CreateCall(e.ctx(), twilioapi.CreateCallParams{To: tt.to, MachineDetection: tt.amd,
				URL: e.app.url("/twilio/voice/bridge"), StatusCallback: e.app.url("/twilio/voice/status"),
				StatusCallbackEvents: []string{"answered", "completed"}})
			if err != nil {
				t.Fatal(err)
			}
			fetch := e.app.waitHit("the TwiML fetch", func(h hit) bool { return h.Path == "/twilio/voice/bridge" })
			if got := fetch.Form.Get("AnsweredBy"); got != tt.want {
				t.Fatalf("TwiML fetch AnsweredBy = %q; want %q", got, tt.want)
			}
			// The fetch waited for the verdict: it follows the answer.
			answered := e.waitEvent("answered", emuStatus(sandbox.KindVoiceStatus, "in-progress", call.SID))
			fetched := e.waitEvent("fetched", emuStatus(sandbox.KindVoiceTwiML, "url", call.SID))
			if fetched.Seq < answered.Seq {
				t.Fatalf("TwiML fetched (#%d) before the call was answered (#%d)", fetched.Seq, answered.Seq)
			}
		})
	}
}

// <Play digits> knows only w; a W plays nothing.
func TestPlayDigitsRefusesCapitalW(t *testing.T) {
	e := newEnv(t)
	call, err := e.api.CreateCall(e.ctx(), twilioapi.CreateCallParams{To: "+15551230003",
		Twiml: `<Response><Play digits="W1W2"/><Play digits="ww1ww2#"/></Response>`})
	if err != nil {
		t.Fatal(err)
	}
	first := e.waitEvent("the first Play", verb(call.SID, "Play"))
	if first.Params.Get("digits") != "W1W2" || first.Params.Get("result") == "" {
		t.Fatalf("<Play digits=W1W2> = %v; want refused", first.Params)
	}
	second := e.waitEvent("the second Play", func(ev sandbox.Event) bool {
		return verb(call.SID, "Play")(ev) && ev.Params.Get("digits") == "ww1ww2#"
	})
	if r := second.Params.Get("result"); r != "" {
		t.Fatalf("<Play digits=ww1ww2#> result %q; want played", r)
	}
}

// Given Url and Twiml, Twilio follows Url.
func TestCreateCallUrlWinsOverTwiml(t *testing.T) {
	e := newEnv(t)
	e.app.answer("/twilio/voice/bridge", func(url.Values) string { return `<Response><Say>from the url</Say></Response>` })
	code, body := e.restForm("POST", "/2010-04-01/Accounts/"+testAccount+"/Calls.json", url.Values{
		"To": {"+15551230003"}, "From": {ourNumber}, "Url": {e.app.url("/twilio/voice/bridge")},
		"Twiml": {`<Response><Say>from the twiml</Say></Response>`},
	}, testAccount, testToken)
	if code != 201 {
		t.Fatalf("create call = %d %s", code, body)
	}
	say := e.waitEvent("Say", func(ev sandbox.Event) bool { return ev.Kind == sandbox.KindVoiceVerb && ev.Name == "Say" })
	if say.Params.Get("text") != "from the url" {
		t.Fatalf("the call said %q; want the Url's TwiML", say.Params.Get("text"))
	}
}

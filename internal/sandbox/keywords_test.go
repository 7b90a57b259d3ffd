package sandbox_test

import (
	"net/url"
	"testing"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

// Twilio treats only a whole-body keyword as opt-out, opt-in or help: it
// answers it itself, tells the webhook with Advanced Opt-Out, and refuses
// to send to a number that opted out (21610) until START.
func TestInboundKeywordsAsTwilioHandlesThem(t *testing.T) {
	e := newEnv(t, func(o *sandbox.Options) {
		o.AdvancedOptOut = true
		o.OptOutKeywords = map[string]string{"arret": "STOP"}
	})
	e.app.answer("/twilio/sms/incoming", func(url.Values) string { return `<Response><Message>ok</Message></Response>` })
	const patient = "+15551230002"
	send := func() error {
		_, err := e.api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: patient, Body: "Your visit is tomorrow"})
		return err
	}
	for _, tt := range []struct {
		body, optOutType string
		optedOut         bool
	}{
		{"Stop please", "", false},
		{"Cancel my appointment", "", false},
		{"  stop ", "STOP", true},
		{"START", "START", false},
		{"revoke", "STOP", true},
		{"unstop", "START", false},
		{"OPTOUT", "STOP", true},
		{"yes", "START", false},
		{"Arret", "STOP", true}, // a custom keyword of the Messaging Service
		{"help", "HELP", true},  // HELP changes nothing: still opted out
		{"info", "HELP", true},
	} {
		out, err := e.ctl.IncomingSMS(e.ctx(), patient, tt.body)
		if err != nil {
			t.Fatal(err)
		}
		h := e.app.waitHit("webhook for "+tt.body, func(h hit) bool {
			return h.Path == "/twilio/sms/incoming" && h.Form.Get("MessageSid") == out.Message.SID
		})
		if got := h.Form.Get("OptOutType"); got != tt.optOutType || out.OptOutType != tt.optOutType {
			t.Errorf("%q: OptOutType %q (result %q); want %q", tt.body, got, out.OptOutType, tt.optOutType)
		}
		if (out.TwilioReply != nil) != (tt.optOutType != "") || (out.TwilioReply != nil && !out.TwilioReply.Automatic) {
			t.Errorf("%q: Twilio's own reply %+v; want one exactly for a keyword", tt.body, out.TwilioReply)
		}
		wantReply := "delivered"
		if tt.optedOut {
			wantReply = "failed" // our <Message> to an opted-out number
		}
		if len(out.Replies) != 1 || out.Replies[0].Status != wantReply {
			t.Errorf("%q: webhook replies %+v; want one, %s", tt.body, out.Replies, wantReply)
		}
		err = send()
		if tt.optedOut && twilioapi.Code(err) != 21610 {
			t.Errorf("after %q: send = %v; want 21610", tt.body, err)
		}
		if !tt.optedOut && err != nil {
			t.Errorf("after %q: send = %v; want accepted", tt.body, err)
		}
	}
}

// Without Advanced Opt-Out the keywords still act, but the webhook is not
// told.
func TestDefaultOptOutSendsNoOptOutType(t *testing.T) {
	e := newEnv(t)
	out, err := e.ctl.IncomingSMS(e.ctx(), "+15551230002", "STOP")
	if err != nil {
		t.Fatal(err)
	}
	h := e.app.waitHit("webhook", func(h hit) bool { return h.Path == "/twilio/sms/incoming" })
	if _, ok := h.Form["OptOutType"]; ok || out.TwilioReply == nil {
		t.Fatalf("webhook %v, result %+v; want no OptOutType and Twilio's reply", h.Form, out)
	}
	if _, err := e.api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: "+15551230002", Body: "x"}); twilioapi.Code(err) != 21610 {
		t.Fatalf("send after STOP = %v; want 21610", err)
	}
}

// The queue-full sender is refused once with 21611, then accepted.
func TestQueueFullSenderRefusesOnce(t *testing.T) {
	e := newEnv(t)
	api, err := twilioapi.New(twilioapi.Config{AccountSID: testAccount, AuthToken: testToken,
		FromNumber: sandbox.NumberQueueFull, APIURL: e.base}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: "+15551230002", Body: "x"})
	if twilioapi.Code(err) != 21611 || !twilioapi.Transient(err) {
		t.Fatalf("first send = %v; want a transient 21611", err)
	}
	if _, err := api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: "+15551230002", Body: "x"}); err != nil {
		t.Fatalf("second send = %v; want accepted", err)
	}
}

func TestValidityPeriodIsKeptAndChecked(t *testing.T) {
	e := newEnv(t)
	const svc = "MG0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		validity string
		status   int
	}{{"600", 201}, {"0", 400}, {"36001", 400}} {
		code, body := e.restForm("POST", "/2010-04-01/Accounts/"+testAccount+"/Messages.json", url.Values{
			"To": {"+15551230002"}, "MessagingServiceSid": {svc}, "Body": {"soon"}, "ValidityPeriod": {tt.validity},
		}, testAccount, testToken)
		if code != tt.status {
			t.Errorf("ValidityPeriod=%s: %d %s; want %d", tt.validity, code, body, tt.status)
		}
	}
	msgs, _ := e.ctl.Messages(e.ctx())
	if len(msgs) != 1 || msgs[0].ValidityPeriod != 600 {
		t.Fatalf("messages %+v; want one with validity_period 600", msgs)
	}
}

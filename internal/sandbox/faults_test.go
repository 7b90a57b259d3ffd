package sandbox_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twilioapi"
)

func TestFaultFailAfterAcceptActsThenAnswers500(t *testing.T) {
	e := newEnv(t)
	if _, err := e.ctl.SetFaults(e.ctx(), sandbox.Faults{FailAfterAccept: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := e.api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: "+15551230002", Body: "hi",
		StatusCallback: e.app.url("/twilio/sms/status")})
	if twilioapi.Code(err) != 20500 {
		t.Fatalf("SendSMS under fail_after_accept = %v; want a 500 20500", err)
	}
	// Twilio acted all the same: the message exists and goes on.
	msgs, _ := e.ctl.Messages(e.ctx())
	if len(msgs) != 1 || msgs[0].To != "+15551230002" {
		t.Fatalf("messages after the 500 = %+v; want the one message, accepted", msgs)
	}
	e.app.waitHit("its delivered callback", func(h hit) bool { return h.Form.Get("MessageStatus") == "delivered" })
	// The fault was used up: the next create is answered normally.
	if _, err := e.api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: "+15551230002", Body: "again"}); err != nil {
		t.Fatalf("second SendSMS = %v; want nil", err)
	}
	if f, _ := e.ctl.Faults(e.ctx()); f.FailAfterAccept != 0 {
		t.Fatalf("faults left = %+v; want none", f)
	}
}

func TestFaultDelayAfterAcceptOutlastsTheClientTimeout(t *testing.T) {
	e := newEnv(t)
	if _, err := e.ctl.SetFaults(e.ctx(), sandbox.Faults{DelayAfterAccept: 1, DelayMS: 5000}); err != nil {
		t.Fatal(err)
	}
	impatient, err := twilioapi.New(twilioapi.Config{AccountSID: testAccount, AuthToken: testToken,
		FromNumber: ourNumber, APIURL: e.base, Timeout: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = impatient.CreateCall(e.ctx(), twilioapi.CreateCallParams{To: "+15551230003",
		Twiml: `<Response><Hangup/></Response>`, StatusCallback: e.app.url("/twilio/voice/status")})
	if err == nil || !twilioapi.Ambiguous(err) {
		t.Fatalf("CreateCall under delay_after_accept = %v; want an ambiguous timeout", err)
	}
	calls, _ := e.ctl.Calls(e.ctx())
	if len(calls) != 1 {
		t.Fatalf("calls = %+v; want the call placed although the client timed out", calls)
	}
	e.app.waitHit("the call's completed callback", callStatus("completed", calls[0].SID))
}

func TestFaultDropStatusCallbacksLosesAShare(t *testing.T) {
	e := newEnv(t)
	if _, err := e.ctl.SetFaults(e.ctx(), sandbox.Faults{DropStatusCallbacks: 0.5}); err != nil {
		t.Fatal(err)
	}
	m, err := e.api.SendSMS(e.ctx(), twilioapi.SendSMSParams{To: "+15551230002", Body: "hi",
		StatusCallback: e.app.url("/twilio/sms/status")})
	if err != nil {
		t.Fatal(err)
	}
	e.waitEvent("delivered", emuStatus(sandbox.KindSMSStatus, "delivered", m.SID))
	var dropped, sent int
	for _, ev := range e.emu.Events() {
		if ev.SID != m.SID {
			continue
		}
		if ev.Err == "dropped by fault injection" && ev.Status == 0 {
			dropped++
		} else if ev.Status == http.StatusNoContent {
			sent++
		}
	}
	// queued, sent, delivered: every second one is lost.
	if dropped != 1 || sent != 2 || len(e.app.all(func(h hit) bool { return h.Path == "/twilio/sms/status" })) != 2 {
		t.Fatalf("dropped %d, delivered %d of 3 callbacks; want 1 and 2", dropped, sent)
	}
	if err := e.ctl.ClearFaults(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctl.SetFaults(e.ctx(), sandbox.Faults{DropStatusCallbacks: 2}); sandbox.StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("SetFaults(share 2) = %v; want 400", err)
	}
}

// A Voice webhook answered 5xx is retried only when its URL's connection
// overrides ask for it; the retries carry the same idempotency token.
func TestWebhookRetriesFollowConnectionOverridesOnly(t *testing.T) {
	for _, tt := range []struct {
		fragment string
		fails    int
		tries    int
		answered bool
	}{
		{"", 1, 1, false},                     // Twilio's default: a 5xx is not retried
		{"#rc=3&rp=5xx", 2, 3, true},          // retried until answered
		{"#rc=2&rp=all&rt=4000", 5, 3, false}, // retries run out
		{"#rc=3&rp=ct", 1, 1, false},          // only failed connects are retried
	} {
		t.Run(tt.fragment, func(t *testing.T) {
			e := newEnv(t)
			e.app.failNext("/twilio/voice/status", tt.fails)
			call, err := e.api.CreateCall(e.ctx(), twilioapi.CreateCallParams{To: "+15005550001",
				Twiml: `<Response/>`, StatusCallback: e.app.url("/twilio/voice/status?visit=V-1") + tt.fragment})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			last, err := e.emu.WaitFor(ctx, func(ev sandbox.Event) bool {
				return ev.SID == call.SID && ev.Kind == sandbox.KindVoiceStatus && ev.Name == "busy" && ev.Try > 0 && !ev.Retrying
			})
			if err != nil {
				t.Fatal(err)
			}
			hits := e.app.all(callStatus("busy", call.SID))
			if len(hits) != tt.tries || (last.Status == 204) != tt.answered {
				t.Fatalf("%d tries, last %+v; want %d tries, answered %v", len(hits), last, tt.tries, tt.answered)
			}
			for _, h := range hits {
				if h.Query.Get("visit") != "V-1" || strings.Contains(h.Path, "#") || !h.Valid {
					t.Fatalf("retry %+v: want the URL without its fragment, signed", h)
				}
			}
			e.app.mu.Lock()
			idem := append([]string(nil), e.app.idem...)
			e.app.mu.Unlock()
			for _, tok := range idem[1:] {
				if tok != idem[0] {
					t.Fatalf("idempotency tokens %v; want one token for every try", idem)
				}
			}
		})
	}
}

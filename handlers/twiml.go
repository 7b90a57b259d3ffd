package handlers

import (
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/twiml"
	"github.com/visitflow/visitflow/workflows"
)

// twiml.go holds the routes whose answer is TwiML: Twilio fetches them when a
// call or an inbound SMS needs instructions (signed like every /twilio route).
// handleSMSIncoming is POST /twilio/sms/incoming: STOP/START keep the opt-out
// record current, HELP is answered; the answer is TwiML.
func handleSMSIncoming(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := &form{v: r.PostForm}
		from := f.required("From")
		body := f.str("Body")
		if f.err != nil {
			d.badCallback(w, r, f.err)
			return
		}
		replies, err := d.Engine.ApplyIncomingSMS(r.Context(), workflows.IncomingSMS{From: from, Body: body,
			OptOutType: f.str("OptOutType")})
		if err != nil {
			d.Log.Error("inbound sms not recorded", zap.Error(err))
			http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write(twiml.MessagingResponse(replies...))
	})
}

// writeTwiML answers a Twilio TwiML request, or 503 when the engine could
// not decide (Redis down), so Twilio's fallback URL or retry takes over.
func (d Deps) writeTwiML(w http.ResponseWriter, r *http.Request, doc string, err error) {
	route := routeLabel(r)
	if err != nil {
		d.Metrics.WebhookRequests.WithLabelValues(route, "unavailable").Inc()
		d.Log.Error("twiml request failed", zap.String("route", route), zap.Error(err))
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	d.Metrics.WebhookRequests.WithLabelValues(route, "applied").Inc()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, doc)
}

// handleInterpreterBridge: POST /twilio/voice/bridge?visit=&leg=interpreter,
// the TwiML of the answered interpreter call (IVR digits, then the room).
func handleInterpreterBridge(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, err := d.Engine.InterpreterTwiML(r.Context(), r.URL.Query().Get("visit"),
			r.PostForm.Get("CallSid"), r.PostForm.Get("AnsweredBy"))
		d.writeTwiML(w, r, doc, err)
	})
}

// handleVoiceIncoming: POST /twilio/voice/incoming, a PSTN caller dialing in.
func handleVoiceIncoming(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, err := d.Engine.DialInIncoming(r.Context(), r.PostForm.Get("From"))
		d.writeTwiML(w, r, doc, err)
	})
}

// handleVoicePIN: POST /twilio/voice/pin?try=N&tries=M, the <Gather>
// action: PIN N of the M this call may enter (we signed both into the URL).
func handleVoicePIN(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		try, _ := strconv.Atoi(r.URL.Query().Get("try"))
		tries, _ := strconv.Atoi(r.URL.Query().Get("tries"))
		if tries < 1 {
			tries = d.Config.Visits.DialInTriesPerCall // a call that started before tries was in the URL
		}
		doc, err := d.Engine.DialInPIN(r.Context(), r.PostForm.Get("CallSid"), r.PostForm.Get("From"),
			r.PostForm.Get("Digits"), max(try, 1), tries)
		d.writeTwiML(w, r, doc, err)
	})
}

// handleDialInConnect: POST /twilio/voice/dialin/connect?visit=&hold=N, a
// caller holding while the visit's room is opened.
func handleDialInConnect(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hold, _ := strconv.Atoi(r.URL.Query().Get("hold"))
		doc, err := d.Engine.DialInConnect(r.Context(), r.PostForm.Get("CallSid"), r.URL.Query().Get("visit"), hold)
		d.writeTwiML(w, r, doc, err)
	})
}

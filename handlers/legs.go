package handlers

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// legFailure translates the phone-leg, invite and token errors, then
// everything else as apiFailure does.
func (d Deps) legFailure(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, workflows.ErrLegLive):
		writeError(w, http.StatusConflict, "interpreter_live", "an interpreter leg is already being dialled or connected; DELETE it first", "")
	case errors.Is(err, workflows.ErrGone):
		writeError(w, http.StatusGone, "gone", "this invitation has expired or was revoked", "")
	default:
		d.apiFailure(w, r, err)
	}
}

// visitID reads {id}; an id that cannot exist is 404 without touching Redis.
func visitID(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if !visit.ValidID(id) {
		return "", store.ErrNotFound
	}
	return id, nil
}

// handleIssueToken: POST /v1/visits/{id}/tokens {"role"} → a room-scoped token.
func handleIssueToken(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Role string `json:"role"`
		}
		id, err := visitID(r)
		if err == nil {
			err = decodeJSON(r, &in)
		}
		var g workflows.Grant
		if err == nil {
			g, err = d.Engine.IssueToken(r.Context(), id, in.Role)
		}
		if err != nil {
			d.legFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	})
}

// handleCreateInvite: POST /v1/visits/{id}/invites {"phone","name","role"}.
func handleCreateInvite(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in workflows.InviteInput
		id, err := visitID(r)
		if err == nil {
			err = decodeJSON(r, &in)
		}
		var inv workflows.InviteView
		if err == nil {
			inv, err = d.Engine.CreateInvite(r.Context(), id, in)
		}
		if err != nil {
			d.legFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, inv)
	})
}

// handleJoin: POST /v1/join/{invite}: the invite is the credential.
func handleJoin(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		g, err := d.Engine.Join(r.Context(), mux.Vars(r)["invite"])
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no such invitation", "")
			return
		}
		if err != nil {
			d.legFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	})
}

// handleRequestInterpreter: POST /v1/visits/{id}/interpreter {"line"} → 202.
func handleRequestInterpreter(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Line string `json:"line"`
		}
		id, err := visitID(r)
		if err == nil {
			err = decodeJSON(r, &in)
		}
		var v *visit.Visit
		if err == nil {
			v, err = d.Engine.RequestInterpreter(r.Context(), id, in.Line)
		}
		if err != nil {
			d.legFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, ViewOf(v, nil))
	})
}

// handleHangUpInterpreter: DELETE /v1/visits/{id}/interpreter.
func handleHangUpInterpreter(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := visitID(r)
		var v *visit.Visit
		if err == nil {
			v, err = d.Engine.HangUpInterpreter(r.Context(), id)
		}
		if err != nil {
			d.legFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ViewOf(v, nil))
	})
}

// handleEndVisit: POST /v1/visits/{id}/end.
func handleEndVisit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := visitID(r)
		var v *visit.Visit
		if err == nil {
			v, err = d.Engine.EndVisit(r.Context(), id)
		}
		if err != nil {
			d.legFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ViewOf(v, nil))
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

// handleVoicePIN: POST /twilio/voice/pin?try=N, the <Gather> action.
func handleVoicePIN(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		try, _ := strconv.Atoi(r.URL.Query().Get("try"))
		doc, err := d.Engine.DialInPIN(r.Context(), r.PostForm.Get("CallSid"), r.PostForm.Get("From"),
			r.PostForm.Get("Digits"), max(try, 1))
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

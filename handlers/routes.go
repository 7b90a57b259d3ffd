package handlers

import (
	"net/http"

	"github.com/gorilla/mux"
)

// addRoutes maps the whole HTTP surface (contract §4), edge by edge.
func addRoutes(r *mux.Router, d Deps) {
	// Twilio's callbacks (twilio.go) and TwiML requests (twiml.go): every
	// request signed, bodies bounded.
	twilio := r.PathPrefix("/twilio").Subrouter()
	twilio.Use(limitBody(d.Config.HTTP.MaxBodyBytes, d.Metrics), verifyTwilio(d))
	twilio.Handle("/video/status", handleVideoStatus(d)).Methods(http.MethodPost)
	twilio.Handle("/voice/status", handleVoiceStatus(d)).Methods(http.MethodPost)
	twilio.Handle("/sms/status", handleSMSStatus(d)).Methods(http.MethodPost)
	twilio.Handle("/sms/incoming", handleSMSIncoming(d)).Methods(http.MethodPost)
	twilio.Handle("/voice/incoming", handleVoiceIncoming(d)).Methods(http.MethodPost)
	twilio.Handle("/voice/pin", handleVoicePIN(d)).Methods(http.MethodPost)
	twilio.Handle("/voice/dialin/connect", handleDialInConnect(d)).Methods(http.MethodPost)
	twilio.Handle("/voice/bridge", handleInterpreterBridge(d)).Methods(http.MethodPost)

	// The patient's side (join.go): the one /v1 route without bearer auth
	// (the invite is the credential), so it is registered before the /v1
	// subrouter.
	r.Handle("/v1/join/{invite}", limitBody(1<<10, d.Metrics)(handleJoin(d))).Methods(http.MethodPost)

	// The scheduling API (api.go, batch.go): bearer auth, checked before
	// any body is read; JSON bodies of at most apiMaxBody, except the
	// batch create's, which is registered first with its own limit.
	r.Handle("/v1/visits/batch", chain(handleBatchCreate(d),
		countAPI(d.Metrics), requireBearer(d.Config.API.Token), capBody(batchMaxBody))).Methods(http.MethodPost)
	api := r.PathPrefix("/v1").Subrouter()
	api.Use(countAPI(d.Metrics), requireBearer(d.Config.API.Token), capBody(apiMaxBody))
	api.Handle("/visits", handleCreateVisit(d)).Methods(http.MethodPost)
	api.Handle("/visits", handleListVisits(d)).Methods(http.MethodGet)
	api.Handle("/visits/{id}", handleGetVisit(d)).Methods(http.MethodGet)
	api.Handle("/visits/{id}", handleUpdateVisit(d)).Methods(http.MethodPatch)
	api.Handle("/visits/{id}/cancel", handleCancelVisit(d)).Methods(http.MethodPost)
	api.Handle("/visits/{id}/end", handleEndVisit(d)).Methods(http.MethodPost)
	api.Handle("/visits/{id}/tokens", handleIssueToken(d)).Methods(http.MethodPost)
	api.Handle("/visits/{id}/invites", handleCreateInvite(d)).Methods(http.MethodPost)
	api.Handle("/visits/{id}/interpreter", handleRequestInterpreter(d)).Methods(http.MethodPost)
	api.Handle("/visits/{id}/interpreter", handleHangUpInterpreter(d)).Methods(http.MethodDelete)

	// Operations (ops.go): health, readiness, metrics, and the admin pages
	// behind basic auth.
	r.Handle("/healthz", handleHealthz()).Methods(http.MethodGet)
	r.Handle("/readyz", handleReadyz(d)).Methods(http.MethodGet)
	r.Handle("/metrics", d.Metrics.Handler()).Methods(http.MethodGet)
	admin := r.PathPrefix("/admin").Subrouter()
	admin.Use(requireBasic(d.Config.Admin.Username, d.Config.Admin.Password), adminHeaders("/admin/queues", d.Dashboard))
	if d.Dashboard != nil {
		admin.PathPrefix("/queues").Handler(d.Dashboard)
	}
	if d.Board != nil {
		admin.PathPrefix("/visits").Handler(d.Board)
	}
	if d.Sandbox != nil {
		r.PathPrefix("/sandbox/").Handler(http.StripPrefix("/sandbox", d.Sandbox))
	}
}

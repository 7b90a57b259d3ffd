package handlers

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/visitflow/visitflow/internal/joinpage"
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
	r.Handle("/v1/join/{invite}", limitBody(1<<10, d.Metrics)(auditRequests(d, inviteRequest)(handleJoin(d)))).Methods(http.MethodPost)
	// The status the page polls every few seconds is not audited: it shows
	// nothing the page itself (audited when it is opened) does not.
	r.Handle("/v1/join/{invite}/status", handleJoinStatus(d)).Methods(http.MethodGet)
	// The page the join link opens (internal/joinpage) and its assets; in
	// sandbox mode it joins the emulator's room under /sandbox.
	r.PathPrefix(joinpage.Prefix).Handler(auditRequests(d, invitePageRequest)(joinPage(d))).Methods(http.MethodGet, http.MethodHead)

	// The scheduling API (api.go, batch.go): bearer auth, checked before
	// any body is read; JSON bodies of at most apiMaxBody, except the
	// batch create's, which is registered first with its own limit.
	tokens := newAPITokens(d.Config.API)
	r.Handle("/v1/visits/batch", chain(handleBatchCreate(d),
		countAPI(d.Metrics), requireBearer(tokens), capBody(batchMaxBody), auditRequests(d, apiRequest))).Methods(http.MethodPost)
	api := r.PathPrefix("/v1").Subrouter()
	api.Use(countAPI(d.Metrics), requireBearer(tokens), capBody(apiMaxBody),
		auditRequests(d, apiRequest)) // audit.go: every /v1 request is in the audit trail
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
	api.Handle("/audit", handleAuditTrail(d)).Methods(http.MethodGet)

	// Operations (ops.go): health, readiness, metrics, and the admin pages
	// behind basic auth.
	r.Handle("/healthz", handleHealthz()).Methods(http.MethodGet)
	r.Handle("/readyz", handleReadyz(d)).Methods(http.MethodGet)
	r.Handle("/metrics", d.Metrics.Handler()).Methods(http.MethodGet)
	admin := r.PathPrefix("/admin").Subrouter()
	admin.Use(requireBasic(d.Config.Admin.Username, d.Config.Admin.Password), adminHeaders("/admin/queues", d.Dashboard))
	if d.Dashboard != nil {
		admin.PathPrefix("/queues").Handler(auditAnswers(d, dashboardRequest, dashboardShown)(d.Dashboard))
	}
	if d.Board != nil {
		admin.PathPrefix("/visits").Handler(auditRequests(d, boardRequest)(d.Board))
	}
	if d.Sandbox != nil {
		r.PathPrefix("/sandbox/").Handler(http.StripPrefix("/sandbox", d.Sandbox))
	}
}

package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// VisitView is the visit resource of contract §4.
type VisitView struct {
	ID           string                  `json:"id"`
	State        visit.State             `json:"state"`
	ScheduledAt  time.Time               `json:"scheduled_at"`
	Timezone     string                  `json:"timezone"`
	Provider     visit.Person            `json:"provider"`
	Patient      visit.Person            `json:"patient"`
	Room         visit.Room              `json:"room"`
	DialIn       visit.DialIn            `json:"dial_in"`
	Participants []visit.ParticipantView `json:"participants"`
	Interpreter  *visit.InterpreterLeg   `json:"interpreter"`
	ConfirmedAt  *time.Time              `json:"confirmed_at"`
	Timeline     []visit.Entry           `json:"timeline,omitempty"`
	CreatedAt    time.Time               `json:"created_at"`
	UpdatedAt    time.Time               `json:"updated_at"`
}

// ViewOf renders a visit (and its timeline, when given) as the API shows it.
func ViewOf(v *visit.Visit, timeline []visit.Entry) VisitView {
	return VisitView{
		ID: v.ID, State: v.State(), ScheduledAt: v.ScheduledAt, Timezone: v.Timezone,
		Provider: v.Provider, Patient: v.Patient, Room: v.Room, DialIn: v.DialIn,
		Participants: v.ParticipantList(), Interpreter: v.Interpreter, ConfirmedAt: v.ConfirmedAt, Timeline: timeline,
		CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt,
	}
}

// decodeJSON reads one JSON value from the (capBody-bounded) body into dst;
// unknown fields are errors so typos are not silently ignored, and so is
// anything after the value: a body is one value, not the first of several.
func decodeJSON(r *http.Request, dst any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, "")
	}
	if err := endOfBody(dec); err != nil {
		return err
	}
	return nil
}

// endOfBody refuses anything but white space after the JSON value dec read.
func endOfBody(dec *json.Decoder) error {
	var extra json.RawMessage
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return nil
	case err != nil:
		if tooLarge := jsonError(err, ""); errors.Is(tooLarge, errBodyTooLarge) {
			return tooLarge
		}
	}
	return &workflows.InputError{Field: "body", Message: "has data after the JSON value"}
}

// errBodyTooLarge: the body went past its route's limit (413).
var errBodyTooLarge = errors.New("handlers: request body too large")

// jsonError translates a decoding error; prefix names the item ("item 3 ").
func jsonError(err error, prefix string) error {
	var typeErr *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: limit %d bytes", errBodyTooLarge, tooLarge.Limit)
	case errors.As(err, &typeErr):
		return &workflows.InputError{Field: typeErr.Field, Message: prefix + "has the wrong type"}
	}
	return &workflows.InputError{Field: "body", Message: prefix + "is not valid JSON: " + err.Error()}
}

// apiFailure is the /v1 edge's one error translator: an engine error
// becomes the contract's JSON error and status.
func (d Deps) apiFailure(w http.ResponseWriter, r *http.Request, err error) {
	var in *workflows.InputError
	switch {
	case errors.As(err, &in):
		writeError(w, http.StatusBadRequest, "invalid", in.Message, in.Field)
	case errors.Is(err, errBodyTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body is larger than the limit", "body")
	case errors.Is(err, workflows.ErrInternal):
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
	case errors.Is(err, visit.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no visit with that id", "")
	case errors.Is(err, visit.ErrLegLive):
		writeError(w, http.StatusConflict, "interpreter_live", "an interpreter leg is already being dialled or connected; DELETE it first", "")
	case errors.Is(err, workflows.ErrGone):
		writeError(w, http.StatusGone, "gone", "this invitation has expired or was revoked", "")
	case errors.Is(err, workflows.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "a visit with this id exists with different details", "id")
	case errors.Is(err, visit.ErrInvalidChange):
		writeError(w, http.StatusUnprocessableEntity, "invalid_state", err.Error(), "")
	case errors.Is(err, visit.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "invalid", "cursor is not one this server made", "cursor")
	default:
		d.Log.Error("api request failed", zap.String("path", r.URL.Path), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the service is temporarily unavailable", "")
	}
}

func handleCreateVisit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in workflows.CreateInput
		if err := decodeJSON(r, &in); err != nil {
			d.apiFailure(w, r, err)
			return
		}
		v, created, err := d.Engine.CreateVisit(r.Context(), in)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
			w.Header().Set("Location", "/v1/visits/"+v.ID)
		}
		writeJSON(w, status, ViewOf(v, nil))
	})
}

func handleGetVisit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := visitID(r)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		v, tl, err := d.Engine.Visit(r.Context(), id)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ViewOf(v, tl))
	})
}

// listPage is GET /v1/visits' answer.
type listPage struct {
	Visits     []VisitView `json:"visits"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func handleListVisits(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		lq := visit.ListQuery{Cursor: q.Get("cursor"), Limit: 50}
		if s := q.Get("state"); s != "" {
			st, ok := visit.ParseState(s)
			if !ok {
				d.apiFailure(w, r, &workflows.InputError{Field: "state", Message: "is not a visit state"})
				return
			}
			lq.State = st
		}
		if err := pageQuery(q, &lq.From, &lq.To, &lq.Limit, 500); err != nil {
			d.apiFailure(w, r, err)
			return
		}
		visits, next, err := d.Engine.ListVisits(r.Context(), lq)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		page := listPage{Visits: make([]VisitView, 0, len(visits)), NextCursor: next}
		for _, v := range visits {
			page.Visits = append(page.Visits, ViewOf(v, nil))
		}
		writeJSON(w, http.StatusOK, page)
	})
}

func handleCancelVisit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := d.Engine.CancelVisit(r.Context(), mux.Vars(r)["id"])
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ViewOf(v, nil))
	})
}

// handleUpdateVisit is PATCH /v1/visits/{id}: reschedule (scheduled_at,
// timezone) and/or contact details; reminders and checks follow.
func handleUpdateVisit(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := visitID(r)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		var in workflows.PatchInput
		if err := decodeJSON(r, &in); err != nil {
			d.apiFailure(w, r, err)
			return
		}
		v, err := d.Engine.UpdateVisit(r.Context(), id, in)
		if err != nil {
			d.apiFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ViewOf(v, nil))
	})
}

// visitID reads {id}; an id that cannot exist is 404 without touching Redis.
func visitID(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if !visit.ValidID(id) {
		return "", visit.ErrNotFound
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
			d.apiFailure(w, r, err)
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
			d.apiFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusCreated, inv)
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
			d.apiFailure(w, r, err)
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
			d.apiFailure(w, r, err)
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
			d.apiFailure(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, ViewOf(v, nil))
	})
}

// pageQuery reads the from, to (RFC 3339) and limit (1..maxLimit) of a
// paged listing's query into the given fields; a field absent from the
// query is left as it is. Its error names the field.
func pageQuery(q url.Values, from, to *time.Time, limit *int, maxLimit int) error {
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", from}, {"to", to}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return &workflows.InputError{Field: p.name, Message: "must be an RFC 3339 time"}
			}
			*p.dst = t
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return &workflows.InputError{Field: "limit", Message: "must be 1 to " + strconv.Itoa(maxLimit)}
		}
		*limit = n
	}
	return nil
}

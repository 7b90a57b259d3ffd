package sandbox

import (
	"bytes"
	"net/http"
	"time"
)

// Faults are failures the emulator injects on request, to show what visitflow
// does when Twilio loses a callback or answers badly after it has acted.
// Set them with POST /faults (Client.SetFaults); GET /faults shows what is
// left of them; DELETE /faults clears them. Counters count down as the
// faults happen.
type Faults struct {
	// DropStatusCallbacks is the share (0 to 1) of status callbacks (Video,
	// Voice and SMS status, not TwiML fetches or inbound webhooks) that are
	// never delivered, recorded as events with Err "dropped by fault
	// injection" and Status 0. The drops are spread evenly, not random:
	// 0.5 drops every second callback, 1 drops them all.
	DropStatusCallbacks float64 `json:"drop_status_callbacks,omitempty"`
	// FailAfterAccept: the next N REST creates (POST Calls.json,
	// Messages.json, Rooms) are carried out (the call is placed, the message
	// queued, the room opened) and then answered 500, code 20500, as if
	// Twilio failed after accepting them.
	FailAfterAccept int `json:"fail_after_accept,omitempty"`
	// DelayAfterAccept: the next N REST creates are carried out and their
	// answer is held for DelayMS milliseconds (wall clock), long enough for
	// a client to time out while Twilio has acted.
	DelayAfterAccept int `json:"delay_after_accept,omitempty"`
	DelayMS          int `json:"delay_ms,omitempty"`

	dropped, seen int // status callbacks dropped / considered so far
}

// faultedCreate wraps a REST create handler with the FailAfterAccept and
// DelayAfterAccept faults: the handler runs to completion, then its answer
// is replaced or held.
func (e *Emulator) faultedCreate(h func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		h(rec, r)
		accepted := rec.status >= 200 && rec.status < 300
		var fail bool
		var delay time.Duration
		e.mu.Lock()
		switch {
		case !accepted:
		case e.faults.FailAfterAccept > 0:
			e.faults.FailAfterAccept--
			fail = true
		case e.faults.DelayAfterAccept > 0:
			e.faults.DelayAfterAccept--
			delay = time.Duration(e.faults.DelayMS) * time.Millisecond
		}
		e.mu.Unlock()
		if fail {
			e.log.Debug("sandbox fault: create accepted, answered 500")
			writeError(w, http.StatusInternalServerError, 20500, "Internal Server Error")
			return
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done(): // the client gave up: it never hears that we acted
			case <-e.ctx.Done():
			}
			t.Stop()
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
		_, _ = w.Write(rec.body.Bytes())
	}
}

// dropCallbackLocked reports whether the status callback being delivered
// now is one the DropStatusCallbacks fault loses. e.mu must be held.
func (e *Emulator) dropCallbackLocked() bool {
	f := &e.faults
	if f.DropStatusCallbacks <= 0 {
		return false
	}
	f.seen++
	if float64(f.dropped+1) <= float64(f.seen)*f.DropStatusCallbacks+1e-9 {
		f.dropped++
		return true
	}
	return false
}

// recorder buffers a handler's answer so a fault can replace it.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}

// Control: POST /faults sets the faults (replacing any left), GET /faults
// shows them, DELETE /faults clears them.
func (e *Emulator) handleSetFaults(w http.ResponseWriter, req *http.Request) {
	var f Faults
	if err := decodeJSON(req, &f); err != nil {
		controlError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if f.DropStatusCallbacks < 0 || f.DropStatusCallbacks > 1 || f.FailAfterAccept < 0 ||
		f.DelayAfterAccept < 0 || f.DelayMS < 0 || (f.DelayAfterAccept > 0 && f.DelayMS == 0) {
		controlError(w, http.StatusBadRequest,
			"drop_status_callbacks must be 0 to 1; counts and delay_ms must not be negative; delay_after_accept needs delay_ms")
		return
	}
	e.mu.Lock()
	e.faults = f
	out := e.faults
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	out := e.faults
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) handleClearFaults(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	e.faults = Faults{}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, Faults{})
}

package sandbox

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Magic destination numbers: see the package documentation.
const (
	NumberBusy         = "+15005550001" // call: busy
	NumberNoAnswer     = "+15005550002" // call: rings until Timeout, no-answer
	NumberFailed       = "+15005550003" // call: failed
	NumberMachine      = "+15005550004" // call: answered by a machine
	NumberBusyOnce     = "+15005550009" // call: busy on the first call, answered by an IVR menu afterwards
	NumberIVR          = "+15005550020" // call: answered by an interpreter service's IVR menu (AMD: a machine)
	NumberInvalid      = "+15005550001" // SMS: 400 21211 invalid 'To'
	NumberOptedOut     = "+15005550004" // SMS: 400 21610 replied STOP
	NumberNotMobile    = "+15005550009" // SMS: 400 21614 not a mobile number
	NumberUnreachable  = "+15005550010" // SMS: accepted, then undelivered 30003
	NumberUnknown      = "+15005550011" // SMS: accepted, then undelivered 30005
	NumberSMSFailed    = "+15005550012" // SMS: accepted, then failed 30008
	NumberRateLimited  = "+15005550429" // calls and SMS: 429 20429
	NumberServerError  = "+15005550500" // calls and SMS: 500 20500
	NumberQueueFull    = "+15005550008" // SMS From: 400 21611 (queue full) on its first message, accepted afterwards
	ringSeconds        = 3              // how long an answered call rings
	queueSeconds       = 1              // queued → initiated
	busySignalSeconds  = 1              // initiated → busy
	defaultCallTimeout = 60
)

type outcome int

const (
	answerHuman outcome = iota
	answerMachine
	answerIVR // a recorded phone-tree menu, waiting for keys
	outcomeBusy
	outcomeNoAnswer
	outcomeFailed
)

// outcomeLocked decides what the callee does. e.mu must be held.
func (e *Emulator) outcomeLocked(to string) outcome {
	e.attempts[to]++
	switch to {
	case NumberBusy:
		return outcomeBusy
	case NumberNoAnswer:
		return outcomeNoAnswer
	case NumberFailed:
		return outcomeFailed
	case NumberMachine:
		return answerMachine
	case NumberIVR:
		return answerIVR
	case NumberBusyOnce:
		if e.attempts[to] == 1 {
			return outcomeBusy
		}
		return answerIVR
	}
	return answerHuman
}

// source is where the next TwiML document comes from.
type source struct {
	name   string // event name of the fetch: url, incoming, gather, redirect, connect-action
	url    string
	method string
	twiml  string     // inline TwiML instead of url
	params url.Values // extra parameters (Digits…)
}

// call is a Voice call. Immutable after creation except where noted; the rest
// is guarded by Emulator.mu.
type call struct {
	sid, direction, from, to string
	timeout, timeLimit       int // seconds
	sendDigits, amd          string
	amdParams                amdParams
	outcome                  outcome
	wake                     chan struct{}

	statusCallback, scMethod string
	events                   map[string]bool
	src                      source // initial TwiML (replaceable until answered)
	status                   string
	answeredBy               string
	created, updated         time.Time
	start, end               time.Time
	deadline                 time.Time // wall clock, TimeLimit
	seq                      int
	digits                   string // DTMF supplied through the control API, not yet consumed
	redirect                 *source
	room                     *room
	participant              *participant // while bridged into room
	log                      []string
}

func (c *call) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

var (
	errEnded      = errors.New("call ended")
	errRedirected = errors.New("call redirected")
	errTimeLimit  = errors.New("call time limit")
	errClosed     = errors.New("emulator closed")
	errHangupVerb = errors.New("hangup")
)

// logLocked appends a line to the call's inspection log. e.mu must be held.
func (c *call) logLocked(format string, args ...any) {
	c.log = append(c.log, fmt.Sprintf(format, args...))
}

func (e *Emulator) callLog(c *call, format string, args ...any) {
	e.mu.Lock()
	c.logLocked(format, args...)
	e.mu.Unlock()
}

// REST: POST /2010-04-01/Accounts/{AccountSid}/Calls.json
func (e *Emulator) handleCreateCall(w http.ResponseWriter, req *http.Request) {
	f := req.PostForm
	to, from := f.Get("To"), f.Get("From")
	switch {
	case to == "":
		writeError(w, http.StatusBadRequest, 21201, "No 'To' number is specified")
		return
	case from == "":
		writeError(w, http.StatusBadRequest, 21213, "No 'From' number is specified")
		return
	case !e164(to):
		writeError(w, http.StatusBadRequest, 21211, "Invalid 'To' Phone Number: "+to)
		return
	case !e164(from):
		writeError(w, http.StatusBadRequest, 21212, "Invalid 'From' Phone Number: "+from)
		return
	}
	if faultInjected(w, to) {
		return
	}
	src := source{name: "url", url: f.Get("Url"), method: orDefault(f.Get("Method"), "POST"), twiml: f.Get("Twiml")}
	switch {
	case src.url == "" && src.twiml == "":
		writeError(w, http.StatusBadRequest, 21205, "Url parameter is required.")
		return
	case src.url != "" && !validURL(src.url):
		writeError(w, http.StatusBadRequest, 21205, "Url is not a valid URL")
		return
	case len(src.twiml) > 4000:
		writeError(w, http.StatusBadRequest, 21205, "Twiml must be at most 4000 characters")
		return
	case src.method != "GET" && src.method != "POST":
		writeError(w, http.StatusBadRequest, 20001, "Method must be GET or POST")
		return
	}
	cb := f.Get("StatusCallback")
	if cb != "" && !validURL(cb) {
		writeError(w, http.StatusBadRequest, 21609, "StatusCallback is not a valid URL")
		return
	}
	scMethod := orDefault(f.Get("StatusCallbackMethod"), "POST")
	if scMethod != "GET" && scMethod != "POST" {
		writeError(w, http.StatusBadRequest, 20001, "StatusCallbackMethod must be GET or POST")
		return
	}
	events, err := parseCallEvents(f["StatusCallbackEvent"])
	if err != nil {
		writeError(w, http.StatusBadRequest, 20001, err.Error())
		return
	}
	timeout, ok1 := intParam(f, "Timeout", defaultCallTimeout, 1, 600)
	timeLimit, ok2 := intParam(f, "TimeLimit", 14400, 1, 86400)
	if !ok1 || !ok2 {
		writeError(w, http.StatusBadRequest, 20001, "Timeout must be 1 to 600 and TimeLimit 1 to 86400 seconds")
		return
	}
	digits := f.Get("SendDigits")
	if len(digits) > 32 || strings.Trim(digits, "0123456789ABCD#*wW") != "" {
		writeError(w, http.StatusBadRequest, 20001, "SendDigits may hold at most 32 of 0-9 A-D # * w W")
		return
	}
	amd := f.Get("MachineDetection")
	if amd != "" && amd != "Enable" && amd != "DetectMessageEnd" {
		writeError(w, http.StatusBadRequest, 20001, "MachineDetection must be Enable or DetectMessageEnd")
		return
	}
	if digits != "" {
		amd = "" // SendDigits disables answering machine detection
	}
	amdp, ok := parseAMD(f)
	if !ok {
		writeError(w, http.StatusBadRequest, 20001, "A MachineDetection parameter is out of range")
		return
	}
	if src.url != "" {
		src.twiml = "" // given both, Twilio uses Url and ignores Twiml
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	c := &call{
		sid: newSID("CA"), direction: "outbound-api", from: from, to: to,
		timeout: timeout, timeLimit: timeLimit, sendDigits: digits, amd: amd, amdParams: amdp,
		outcome: e.outcomeLocked(to), wake: make(chan struct{}, 1),
		statusCallback: cb, scMethod: scMethod, events: events, src: src,
		status: "queued", created: now, updated: now,
	}
	e.calls = append(e.calls, c)
	e.callBy[c.sid] = c
	e.goLocked(func() { e.runOutbound(c) })
	writeJSON(w, http.StatusCreated, e.callJSON(c))
}

// parseCallEvents reads repeated StatusCallbackEvent fields (a field holding
// space-separated events, as in TwiML, is accepted too). Without events only
// "completed" is sent, as Twilio does.
func parseCallEvents(vals []string) (map[string]bool, error) {
	events := map[string]bool{"completed": true}
	for _, v := range vals {
		for _, ev := range strings.Fields(v) {
			switch ev {
			case "initiated", "ringing", "answered", "completed":
				events[ev] = true
			default:
				return nil, fmt.Errorf("StatusCallbackEvent %q is not one of initiated, ringing, answered, completed", ev)
			}
		}
	}
	return events, nil
}

// faultInjected answers the REST-level magic numbers.
func faultInjected(w http.ResponseWriter, to string) bool {
	switch to {
	case NumberRateLimited:
		writeError(w, http.StatusTooManyRequests, 20429, "Too Many Requests")
		return true
	case NumberServerError:
		writeError(w, http.StatusInternalServerError, 20500, "Internal Server Error")
		return true
	}
	return false
}

func sidFromFile(file string) (string, bool) {
	return strings.CutSuffix(file, ".json")
}

// REST: GET /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json
func (e *Emulator) handleFetchCall(w http.ResponseWriter, req *http.Request) {
	sid, _ := sidFromFile(req.PathValue("file"))
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.callBy[sid]
	if c == nil {
		notFound(w, req)
		return
	}
	writeJSON(w, http.StatusOK, e.callJSON(c))
}

// REST: POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json
// Status=completed|canceled hangs up; Twiml or Url redirects a live call.
func (e *Emulator) handleUpdateCall(w http.ResponseWriter, req *http.Request) {
	f := req.PostForm
	sid, _ := sidFromFile(req.PathValue("file"))
	status := f.Get("Status")
	src := source{name: "url", url: f.Get("Url"), method: orDefault(f.Get("Method"), "POST"), twiml: f.Get("Twiml")}
	switch {
	case status != "" && status != "completed" && status != "canceled":
		writeError(w, http.StatusBadRequest, 20001, "Status must be completed or canceled")
		return
	case src.url != "" && !validURL(src.url):
		writeError(w, http.StatusBadRequest, 21205, "Url is not a valid URL")
		return
	case len(src.twiml) > 4000:
		writeError(w, http.StatusBadRequest, 21205, "Twiml must be at most 4000 characters")
		return
	}
	cb := f.Get("StatusCallback")
	if cb != "" && !validURL(cb) {
		writeError(w, http.StatusBadRequest, 21609, "StatusCallback is not a valid URL")
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.callBy[sid]
	if c == nil {
		notFound(w, req)
		return
	}
	if callEnded(c.status) {
		writeError(w, http.StatusBadRequest, 21220, "Call is not in-progress. Cannot redirect.")
		return
	}
	if cb != "" {
		c.statusCallback = cb
		c.scMethod = orDefault(f.Get("StatusCallbackMethod"), "POST")
	}
	answered := c.status == "in-progress"
	switch {
	case status == "completed" && answered:
		c.logLocked("REST: Status=completed")
		e.terminateLocked(c, "completed")
	case status != "" && !answered:
		c.logLocked("REST: Status=%s before answer", status)
		e.terminateLocked(c, "canceled")
	case status == "canceled":
		// Twilio ignores canceled for a call in progress.
	case src.url != "" || src.twiml != "":
		if src.twiml != "" {
			src.url = ""
		}
		if answered {
			c.logLocked("REST: redirect")
			c.redirect = &src
			c.wakeUp()
		} else {
			c.src = src
		}
	}
	writeJSON(w, http.StatusOK, e.callJSON(c))
}

// terminateLocked ends c with status, leaving any room it is bridged into.
// The call's goroutine sends the terminal callback. e.mu must be held.
func (e *Emulator) terminateLocked(c *call, status string) {
	if callEnded(c.status) {
		return
	}
	c.status = status
	c.end = e.now()
	c.updated = c.end
	if p := c.participant; p != nil {
		e.disconnectLocked(c.room, p, true)
	}
	c.participant = nil
	c.wakeUp()
}

// wait blocks for d (no limit when d < 0) or until cond, checked under e.mu,
// holds. It reports whether cond held; it fails when the call ended, was
// redirected or hit its time limit, or the emulator closed.
func (e *Emulator) wait(c *call, d time.Duration, cond func() bool) (bool, error) {
	for {
		e.mu.Lock()
		var err error
		switch {
		case callEnded(c.status):
			err = errEnded
		case c.redirect != nil:
			err = errRedirected
		case !c.deadline.IsZero() && !time.Now().Before(c.deadline):
			err = errTimeLimit
		}
		held := err == nil && cond != nil && cond()
		limit := c.deadline
		e.mu.Unlock()
		if err != nil {
			return false, err
		}
		if held {
			return true, nil
		}
		wait, byLimit := d, false
		if !limit.IsZero() {
			if rem := time.Until(limit); d < 0 || rem < d {
				wait, byLimit = rem, true
			}
		}
		var timer *time.Timer
		var timeout <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		start := time.Now()
		select {
		case <-timeout:
			if byLimit {
				continue // reported by the check above
			}
			return false, nil
		case <-c.wake:
			if d >= 0 {
				if d -= time.Since(start); d < 0 {
					d = 0
				}
			}
		case <-e.ctx.Done():
			err = errClosed
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return false, err
		}
	}
}

// runOutbound plays an outbound-api call: initiated, ringing, then the
// destination's outcome; an answered call follows its TwiML.
func (e *Emulator) runOutbound(c *call) {
	if _, err := e.wait(c, e.seconds(queueSeconds), nil); err != nil {
		e.finish(c, err)
		return
	}
	e.statusEvent(c, "initiated", "initiated")
	switch c.outcome {
	case outcomeFailed:
		e.end(c, "failed")
		return
	case outcomeBusy:
		if _, err := e.wait(c, e.seconds(busySignalSeconds), nil); err != nil {
			e.finish(c, err)
			return
		}
		e.end(c, "busy")
		return
	}
	e.mu.Lock()
	c.status = "ringing"
	c.updated = e.now()
	e.mu.Unlock()
	e.statusEvent(c, "ringing", "ringing")
	ring := min(ringSeconds, c.timeout)
	if c.outcome == outcomeNoAnswer {
		ring = c.timeout
	}
	if _, err := e.wait(c, e.seconds(float64(ring)), nil); err != nil {
		e.finish(c, err)
		return
	}
	if c.outcome == outcomeNoAnswer {
		e.end(c, "no-answer")
		return
	}
	e.mu.Lock()
	if callEnded(c.status) {
		e.mu.Unlock()
		e.finish(c, errEnded)
		return
	}
	e.answerLocked(c)
	if c.sendDigits != "" {
		c.logLocked("SendDigits %s", c.sendDigits)
	}
	if c.outcome == answerIVR {
		c.logLocked("the line plays its IVR menu and waits for keys")
	}
	e.mu.Unlock()
	e.statusEvent(c, "answered", "in-progress")
	if c.amd != "" {
		// Synchronous detection: the TwiML waits for the verdict.
		verdict, took := detect(c.outcome, c.amd, c.amdParams)
		d := e.seconds(took)
		if e.opts.MachineDetectionTime > 0 {
			d = e.opts.MachineDetectionTime
		}
		if _, err := e.wait(c, d, nil); err != nil {
			e.finish(c, err)
			return
		}
		e.mu.Lock()
		c.answeredBy = verdict
		c.logLocked("answering machine detection: %s", verdict)
		e.mu.Unlock()
	}
	e.mu.Lock()
	src := c.src
	e.mu.Unlock()
	e.execute(c, src)
}

// runInbound plays a call to our number: the Voice URL's TwiML answers it.
func (e *Emulator) runInbound(c *call) {
	e.execute(c, source{name: "incoming", url: e.opts.IncomingVoiceURL, method: "POST"})
}

// answerLocked marks c answered. e.mu must be held.
func (e *Emulator) answerLocked(c *call) {
	c.status = "in-progress"
	c.start = e.now()
	c.updated = c.start
	c.deadline = time.Now().Add(e.seconds(float64(c.timeLimit)))
}

// end finishes c with status and sends the terminal callback.
func (e *Emulator) end(c *call, status string) {
	e.mu.Lock()
	e.terminateLocked(c, status)
	e.mu.Unlock()
	e.finish(c, errEnded)
}

// finish sends the terminal callback after an interruption.
func (e *Emulator) finish(c *call, err error) {
	switch err {
	case errClosed:
		return
	case errTimeLimit, errHangupVerb, errAppError:
		e.mu.Lock()
		e.terminateLocked(c, "completed")
		e.mu.Unlock()
	}
	e.mu.Lock()
	status := c.status
	e.mu.Unlock()
	e.statusEvent(c, "completed", status)
}

// callParamsLocked are the parameters of every Voice request about c.
// e.mu must be held.
func (e *Emulator) callParamsLocked(c *call) url.Values {
	v := url.Values{
		"AccountSid": {e.opts.AccountSID},
		"ApiVersion": {"2010-04-01"},
		"CallSid":    {c.sid},
		"CallStatus": {c.status},
		"Called":     {c.to},
		"Caller":     {c.from},
		"Direction":  {c.direction},
		"From":       {c.from},
		"To":         {c.to},
	}
	if c.answeredBy != "" {
		v.Set("AnsweredBy", c.answeredBy)
	}
	return v
}

// statusEvent records a call progress event and, when subscribed, delivers
// the status callback.
func (e *Emulator) statusEvent(c *call, event, callStatus string) {
	e.mu.Lock()
	params := e.callParamsLocked(c)
	params.Set("CallStatus", callStatus)
	params.Set("CallbackSource", "call-progress-events")
	params.Set("Timestamp", e.now().Format(rfc2822))
	if callEnded(callStatus) {
		secs := 0
		if !c.start.IsZero() {
			secs = int(math.Round(c.end.Sub(c.start).Seconds()))
		}
		params.Set("CallDuration", strconv.Itoa(secs))
		if callStatus == "completed" {
			params.Set("Duration", strconv.Itoa((secs+59)/60))
		}
		params.Set("SipResponseCode", strconv.Itoa(sipCode(callStatus)))
	}
	req := request{kind: KindVoiceStatus, name: callStatus, sid: c.sid, method: c.scMethod, params: params}
	if c.statusCallback != "" && c.events[event] {
		params.Set("SequenceNumber", strconv.Itoa(c.seq))
		c.seq++
		req.url = c.statusCallback
	}
	e.mu.Unlock()
	_, _, _ = e.deliver(req)
}

func sipCode(status string) int {
	switch status {
	case "busy":
		return 486
	case "no-answer", "canceled":
		return 487
	case "failed":
		return 404
	}
	return 200
}

// callJSON is api.v2010.account.call.
type callJSON struct {
	Sid             string            `json:"sid"`
	DateCreated     *string           `json:"date_created"`
	DateUpdated     *string           `json:"date_updated"`
	ParentCallSid   *string           `json:"parent_call_sid"`
	AccountSid      string            `json:"account_sid"`
	To              string            `json:"to"`
	ToFormatted     string            `json:"to_formatted"`
	From            string            `json:"from"`
	FromFormatted   string            `json:"from_formatted"`
	PhoneNumberSid  *string           `json:"phone_number_sid"`
	Status          string            `json:"status"`
	StartTime       *string           `json:"start_time"`
	EndTime         *string           `json:"end_time"`
	Duration        *string           `json:"duration"`
	Price           *string           `json:"price"`
	PriceUnit       string            `json:"price_unit"`
	Direction       string            `json:"direction"`
	AnsweredBy      *string           `json:"answered_by"`
	APIVersion      string            `json:"api_version"`
	ForwardedFrom   *string           `json:"forwarded_from"`
	GroupSid        *string           `json:"group_sid"`
	CallerName      *string           `json:"caller_name"`
	QueueTime       string            `json:"queue_time"`
	TrunkSid        *string           `json:"trunk_sid"`
	URI             string            `json:"uri"`
	SubresourceUris map[string]string `json:"subresource_uris"`
}

func (e *Emulator) callJSON(c *call) callJSON {
	base := "/2010-04-01/Accounts/" + e.opts.AccountSID + "/Calls/" + c.sid
	j := callJSON{
		Sid: c.sid, DateCreated: fmt2822(c.created), DateUpdated: fmt2822(c.updated),
		AccountSid: e.opts.AccountSID,
		To:         c.to, ToFormatted: formatNumber(c.to), From: c.from, FromFormatted: formatNumber(c.from),
		Status: c.status, StartTime: fmt2822(c.start), EndTime: fmt2822(c.end),
		PriceUnit: "USD", Direction: c.direction, AnsweredBy: strPtr(c.answeredBy),
		APIVersion: "2010-04-01", QueueTime: "0", URI: base + ".json",
		SubresourceUris: map[string]string{},
	}
	for _, sub := range []string{"Notifications", "Recordings", "Payments", "Events", "Siprec", "Streams", "Transcriptions", "UserDefinedMessageSubscriptions", "UserDefinedMessages"} {
		j.SubresourceUris[snake(sub)] = base + "/" + sub + ".json"
	}
	if callEnded(c.status) {
		secs := 0
		if !c.start.IsZero() {
			secs = int(math.Round(c.end.Sub(c.start).Seconds()))
		}
		d := strconv.Itoa(secs)
		j.Duration = &d
	}
	return j
}

// formatNumber formats a NANP number like Twilio's *_formatted fields.
func formatNumber(n string) string {
	if len(n) == 12 && strings.HasPrefix(n, "+1") {
		return "(" + n[2:5] + ") " + n[5:8] + "-" + n[8:]
	}
	return n
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Control: POST /calls/{sid}/digits {"digits":"482913#"}. Digits are kept
// until a <Gather> consumes them, so they may be sent before it starts.
func (e *Emulator) handleDigits(w http.ResponseWriter, req *http.Request) {
	var body digitsRequest
	if err := decodeJSON(req, &body); err != nil {
		controlError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if body.Digits == "" || strings.Trim(body.Digits, "0123456789*#") != "" {
		controlError(w, http.StatusBadRequest, "digits: one or more of 0-9 * #")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.callBy[req.PathValue("sid")]
	if c == nil {
		controlError(w, http.StatusNotFound, "no such call")
		return
	}
	if callEnded(c.status) {
		controlError(w, http.StatusConflict, "call has ended")
		return
	}
	c.digits += body.Digits
	c.logLocked("DTMF from caller %s", body.Digits)
	c.wakeUp()
	writeJSON(w, http.StatusAccepted, e.callView(c))
}

// Control: POST /calls/incoming {"from","to"}: a PSTN caller dials our number.
func (e *Emulator) handleIncomingCall(w http.ResponseWriter, req *http.Request) {
	var body incomingCallRequest
	if err := decodeJSON(req, &body); err != nil {
		controlError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	to := orDefault(body.To, e.opts.PhoneNumber)
	if !e164(body.From) || !e164(to) {
		controlError(w, http.StatusBadRequest, "from (required) and to must be E.164 numbers")
		return
	}
	if e.opts.IncomingVoiceURL == "" {
		controlError(w, http.StatusConflict, "the sandbox has no IncomingVoiceURL")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	c := &call{
		sid: newSID("CA"), direction: "inbound", from: body.From, to: to,
		timeout: defaultCallTimeout, timeLimit: 14400, wake: make(chan struct{}, 1),
		statusCallback: e.opts.IncomingVoiceStatusURL, scMethod: "POST",
		events: map[string]bool{"completed": true},
		status: "ringing", created: now, updated: now,
	}
	e.calls = append(e.calls, c)
	e.callBy[c.sid] = c
	e.goLocked(func() { e.runInbound(c) })
	writeJSON(w, http.StatusCreated, e.callView(c))
}

// callEnded reports whether status is one of Twilio's final call statuses
// (twilio-protocol §3: completed arrives for every ending, with CallStatus
// completed, busy, no-answer, failed or canceled). The emulator keeps its
// own list on purpose: it plays Twilio, so it must not take Twilio's
// behaviour from visitflow's domain package.
func callEnded(status string) bool {
	switch status {
	case "completed", "busy", "no-answer", "failed", "canceled":
		return true
	}
	return false
}

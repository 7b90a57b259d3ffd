package sandbox

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// message is an SMS. Mutable fields are guarded by Emulator.mu.
type message struct {
	sid, direction, from, to, body, service string
	statusCallback                          string
	final                                   string // delivered, undelivered or failed
	finalCode                               int    // ErrorCode that comes with final
	status                                  string
	errCode                                 int
	created, updated, sent                  time.Time
	validity                                int  // ValidityPeriod, seconds; 0 when not given
	automatic                               bool // Twilio's own reply to a keyword
}

// smsOutcome is what happens after a message is accepted.
func smsOutcome(to string) (status string, code int) {
	switch to {
	case NumberUnreachable:
		return "undelivered", 30003
	case NumberUnknown:
		return "undelivered", 30005
	case NumberSMSFailed:
		return "failed", 30008
	}
	return "delivered", 0
}

var smsErrorMessages = map[int]string{
	30003: "Unreachable destination handset",
	30005: "Unknown destination handset",
	30008: "Unknown error",
}

// REST: POST /2010-04-01/Accounts/{AccountSid}/Messages.json
func (e *Emulator) handleCreateMessage(w http.ResponseWriter, req *http.Request) {
	f := req.PostForm
	to, from, svc, body := f.Get("To"), f.Get("From"), f.Get("MessagingServiceSid"), f.Get("Body")
	switch {
	case to == "":
		writeError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
	case from == "" && svc == "":
		writeError(w, http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
	case svc != "" && !validSID(svc, "MG"):
		writeError(w, http.StatusBadRequest, 21701, "The Messaging Service Sid "+svc+" is invalid.")
	case from != "" && !e164(from):
		writeError(w, http.StatusBadRequest, 21212, "The 'From' number "+from+" is not a valid phone number, shortcode, or alphanumeric sender ID.")
	case body == "" && len(f["MediaUrl"]) == 0 && f.Get("ContentSid") == "":
		writeError(w, http.StatusBadRequest, 21602, "Message body is required.")
	case utf8.RuneCountInString(body) > 1600:
		writeError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
	case !e164(to) || to == NumberInvalid:
		writeError(w, http.StatusBadRequest, 21211, "The 'To' number "+to+" is not a valid phone number.")
	case to == NumberOptedOut:
		writeError(w, http.StatusBadRequest, 21610, "Attempt to send to unsubscribed recipient")
	case to == NumberNotMobile:
		writeError(w, http.StatusBadRequest, 21614, "'To' number "+to+" is not a valid mobile number")
	case faultInjected(w, to):
	case f.Get("StatusCallback") != "" && !validURL(f.Get("StatusCallback")):
		writeError(w, http.StatusBadRequest, 21609, "Invalid StatusCallback URL")
	default:
		validity, ok := intParam(f, "ValidityPeriod", 0, 1, maxValiditySeconds)
		if !ok {
			writeError(w, http.StatusBadRequest, 20001, "ValidityPeriod must be 1 to 36000 seconds")
			return
		}
		e.createMessage(w, to, from, svc, body, f.Get("StatusCallback"), validity)
	}
}

// maxValiditySeconds is Twilio's largest ValidityPeriod (10 hours, as long
// as it keeps a message queued).
const maxValiditySeconds = 36000

func (e *Emulator) createMessage(w http.ResponseWriter, to, from, svc, body, cb string, validity int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.optedOut[to]:
		// The recipient texted STOP to us: Twilio blocks the pair until START.
		writeError(w, http.StatusBadRequest, 21610, "Attempt to send to unsubscribed recipient")
		return
	case from == NumberQueueFull && !e.queueDrained:
		// The sender's queue is full now; it has drained by the next send.
		e.queueDrained = true
		writeError(w, http.StatusBadRequest, 21611, "This 'From' number has exceeded the maximum number of queued messages")
		return
	}
	now := e.now()
	m := &message{
		sid: newSID("SM"), direction: "outbound-api", from: from, to: to, body: body,
		service: svc, statusCallback: cb, status: "queued", created: now, updated: now,
		validity: validity,
	}
	m.final, m.finalCode = smsOutcome(to)
	if from == "" {
		m.status = "accepted" // the service picks a sender when it queues the message
	}
	e.messages = append(e.messages, m)
	e.msgBy[m.sid] = m
	e.goLocked(func() { e.runMessage(m) })
	writeJSON(w, http.StatusCreated, e.messageJSON(m))
}

// runMessage moves m through queued → sent → delivered (or its failure)
// and delivers a status callback at each step, in order.
func (e *Emulator) runMessage(m *message) {
	steps := []string{"queued", "sent", m.final}
	if m.final == "failed" {
		steps = []string{"queued", "failed"}
	}
	for _, status := range steps {
		if e.ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		m.status = status
		m.updated = e.now()
		if m.from == "" {
			m.from = e.opts.PhoneNumber
		}
		if status == "sent" {
			m.sent = m.updated
		}
		if status == "undelivered" || status == "failed" {
			m.errCode = m.finalCode
		}
		params := url.Values{
			"AccountSid":    {e.opts.AccountSID},
			"ApiVersion":    {"2010-04-01"},
			"From":          {m.from},
			"To":            {m.to},
			"MessageSid":    {m.sid},
			"SmsSid":        {m.sid},
			"MessageStatus": {status},
			"SmsStatus":     {status},
		}
		if m.service != "" {
			params.Set("MessagingServiceSid", m.service)
		}
		if m.errCode != 0 {
			params.Set("ErrorCode", strconv.Itoa(m.errCode))
		}
		req := request{kind: KindSMSStatus, name: status, sid: m.sid, url: m.statusCallback, params: params}
		e.mu.Unlock()
		_, _, _ = e.deliver(req)
	}
}

// REST: GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json
func (e *Emulator) handleFetchMessage(w http.ResponseWriter, req *http.Request) {
	sid, _ := sidFromFile(req.PathValue("file"))
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.msgBy[sid]
	if m == nil {
		notFound(w, req)
		return
	}
	writeJSON(w, http.StatusOK, e.messageJSON(m))
}

// messageJSON is api.v2010.account.message.
type messageJSON struct {
	Body                string            `json:"body"`
	NumSegments         string            `json:"num_segments"`
	Direction           string            `json:"direction"`
	From                *string           `json:"from"`
	To                  string            `json:"to"`
	DateUpdated         *string           `json:"date_updated"`
	Price               *string           `json:"price"`
	ErrorMessage        *string           `json:"error_message"`
	URI                 string            `json:"uri"`
	AccountSid          string            `json:"account_sid"`
	NumMedia            string            `json:"num_media"`
	Status              string            `json:"status"`
	MessagingServiceSid *string           `json:"messaging_service_sid"`
	Sid                 string            `json:"sid"`
	DateSent            *string           `json:"date_sent"`
	DateCreated         *string           `json:"date_created"`
	ErrorCode           *int              `json:"error_code"`
	PriceUnit           string            `json:"price_unit"`
	APIVersion          string            `json:"api_version"`
	SubresourceUris     map[string]string `json:"subresource_uris"`
}

func (e *Emulator) messageJSON(m *message) messageJSON {
	base := "/2010-04-01/Accounts/" + e.opts.AccountSID + "/Messages/" + m.sid
	j := messageJSON{
		Body: m.body, NumSegments: strconv.Itoa(segments(m.body)), Direction: m.direction,
		From: strPtr(m.from), To: m.to, DateUpdated: fmt2822(m.updated), URI: base + ".json",
		AccountSid: e.opts.AccountSID, NumMedia: "0", Status: m.status,
		MessagingServiceSid: strPtr(m.service), Sid: m.sid, DateSent: fmt2822(m.sent),
		DateCreated: fmt2822(m.created), PriceUnit: "USD", APIVersion: "2010-04-01",
		SubresourceUris: map[string]string{
			"media":    base + "/Media.json",
			"feedback": base + "/Feedback.json",
		},
	}
	if m.errCode != 0 {
		code := m.errCode
		j.ErrorCode = &code
		j.ErrorMessage = strPtr(smsErrorMessages[code])
	}
	return j
}

// segments is how many SMS segments body takes (GSM-7 sizes; good enough).
func segments(body string) int {
	n := utf8.RuneCountInString(body)
	if n <= 160 {
		return 1
	}
	return (n + 152) / 153
}

func validSID(s, prefix string) bool {
	if len(s) != 34 || !strings.HasPrefix(s, prefix) {
		return false
	}
	for _, c := range s[2:] {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// Control: POST /messages/incoming {"from","to","body"}: a phone texts our
// number. The webhook is called synchronously; <Message> replies in its TwiML
// are recorded as outbound-reply messages and returned.
func (e *Emulator) handleIncomingSMS(w http.ResponseWriter, req *http.Request) {
	var in incomingSMSRequest
	if err := decodeJSON(req, &in); err != nil {
		controlError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	to := orDefault(in.To, e.opts.PhoneNumber)
	if !e164(in.From) || !e164(to) {
		controlError(w, http.StatusBadRequest, "from (required) and to must be E.164 numbers")
		return
	}
	e.mu.Lock()
	now := e.now()
	m := &message{sid: newSID("SM"), direction: "inbound", from: in.From, to: to, body: in.Body,
		status: "received", created: now, updated: now, sent: now}
	e.messages = append(e.messages, m)
	e.msgBy[m.sid] = m
	e.mu.Unlock()

	params := url.Values{
		"AccountSid":    {e.opts.AccountSID},
		"ApiVersion":    {"2010-04-01"},
		"Body":          {in.Body},
		"From":          {in.From},
		"To":            {to},
		"MessageSid":    {m.sid},
		"SmsMessageSid": {m.sid},
		"SmsSid":        {m.sid},
		"SmsStatus":     {"received"},
		"NumMedia":      {"0"},
		"NumSegments":   {strconv.Itoa(segments(in.Body))},
	}
	// Twilio acts on a keyword before the webhook sees it: the opt-out
	// changes, Twilio answers with its own reply, and with Advanced Opt-Out
	// the webhook is told which keyword type it was.
	var custom map[string]string
	if e.opts.AdvancedOptOut {
		custom = e.customKeywords
	}
	keyword := keywordType(in.Body, custom)
	out := IncomingSMSResult{OptOutType: keyword}
	e.mu.Lock()
	switch keyword {
	case "STOP":
		e.optedOut[in.From] = true
	case "START":
		delete(e.optedOut, in.From)
	}
	if keyword != "" {
		now := e.now()
		r := &message{sid: newSID("SM"), direction: "outbound-reply", from: to, to: in.From,
			body: autoReply(keyword), status: "delivered", created: now, updated: now, sent: now, automatic: true}
		e.messages = append(e.messages, r)
		e.msgBy[r.sid] = r
		v := e.messageView(r)
		out.TwilioReply = &v
	}
	e.mu.Unlock()
	if keyword != "" && e.opts.AdvancedOptOut {
		params.Set("OptOutType", keyword)
	}
	status, body, err := e.deliver(request{kind: KindSMSIncoming, name: "received", sid: m.sid,
		url: e.opts.IncomingSMSURL, params: params})
	out.WebhookStatus = status
	if err != nil {
		out.WebhookError = err.Error()
	}
	if err == nil && len(body) > 0 {
		for _, text := range smsReplies(body) {
			e.mu.Lock()
			now := e.now()
			r := &message{sid: newSID("SM"), direction: "outbound-reply", from: to, to: in.From,
				body: text, status: "delivered", created: now, updated: now, sent: now}
			if e.optedOut[in.From] {
				r.status, r.errCode = "failed", 21610 // Twilio does not deliver to an opted-out number
			}
			e.messages = append(e.messages, r)
			e.msgBy[r.sid] = r
			out.Replies = append(out.Replies, e.messageView(r))
			e.mu.Unlock()
		}
	}
	e.mu.Lock()
	out.Message = e.messageView(m)
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

// smsReplies extracts the texts of <Message> verbs from a TwiML answer.
func smsReplies(b []byte) []string {
	root, err := parseTwiML(b)
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range root.Nodes {
		if n.XMLName.Local != "Message" {
			continue
		}
		text := strings.TrimSpace(n.Text)
		for _, c := range n.Nodes {
			if c.XMLName.Local == "Body" {
				text = strings.TrimSpace(c.Text)
			}
		}
		out = append(out, text)
	}
	return out
}

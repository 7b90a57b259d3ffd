package sandbox

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// node is a TwiML element.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []node     `xml:",any"`
}

func (n *node) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (n *node) attrOr(name, def string) string {
	if v, ok := n.attr(name); ok && v != "" {
		return v
	}
	return def
}

func parseTwiML(b []byte) (node, error) {
	var root node
	if err := xml.Unmarshal(b, &root); err != nil {
		return node{}, fmt.Errorf("TwiML: %w (error 12100)", err)
	}
	if root.XMLName.Local != "Response" {
		return node{}, fmt.Errorf("TwiML: root element is <%s>, want <Response> (error 12100)", root.XMLName.Local)
	}
	return root, nil
}

// errAppError ends a call the way Twilio does after an "application error".
var errAppError = errors.New("application error")

// execute follows TwiML from src until the call ends.
func (e *Emulator) execute(c *call, src source) {
	for {
		doc, base, err := e.load(c, src)
		if err != nil {
			if e.ctx.Err() != nil {
				return
			}
			e.callLog(c, "application error: %v", err)
			e.finish(c, errAppError)
			return
		}
		next, err := e.runVerbs(c, doc.Nodes, base)
		switch {
		case errors.Is(err, errRedirected):
			e.mu.Lock()
			src = *c.redirect
			c.redirect = nil
			e.mu.Unlock()
		case err != nil:
			e.finish(c, err)
			return
		case next != nil:
			src = *next
		default:
			e.end(c, "completed") // no more verbs: Twilio hangs up
			return
		}
	}
}

// load fetches (signed, like Twilio) or parses the TwiML document of src. It
// returns the document and the URL relative references resolve against.
func (e *Emulator) load(c *call, src source) (node, string, error) {
	if src.twiml != "" {
		root, err := parseTwiML([]byte(src.twiml))
		return root, "", err
	}
	e.mu.Lock()
	params := e.callParamsLocked(c)
	e.mu.Unlock()
	for k, v := range src.params {
		params[k] = v
	}
	_, body, err := e.deliver(request{kind: KindVoiceTwiML, name: src.name, sid: c.sid,
		method: src.method, url: src.url, params: params})
	if err != nil {
		return node{}, "", fmt.Errorf("fetch %s TwiML: %w (error 11200)", src.name, err)
	}
	root, err := parseTwiML(body)
	base, _, _ := strings.Cut(src.url, "#")
	return root, base, err
}

func (e *Emulator) runVerbs(c *call, verbs []node, base string) (*source, error) {
	for i := range verbs {
		v := &verbs[i]
		if _, err := e.wait(c, 0, nil); err != nil {
			return nil, err
		}
		if v.XMLName.Local != "Reject" {
			e.answerInbound(c)
		}
		next, err := e.verb(c, v, base)
		if err != nil || next != nil {
			return next, err
		}
	}
	return nil, nil
}

// answerInbound answers a ringing inbound call when its TwiML starts.
func (e *Emulator) answerInbound(c *call) {
	e.mu.Lock()
	answered := c.direction == "inbound" && c.status == "ringing"
	if answered {
		e.answerLocked(c)
	}
	e.mu.Unlock()
	if answered {
		e.statusEvent(c, "answered", "in-progress")
	}
}

// verbEvent records a verb in the event history and the call log.
func (e *Emulator) verbEvent(c *call, v *node, result string, extra ...string) {
	params := url.Values{}
	var desc []string
	for _, a := range v.Attrs {
		params.Set(a.Name.Local, a.Value)
		desc = append(desc, fmt.Sprintf("%s=%q", a.Name.Local, a.Value))
	}
	if t := strings.TrimSpace(v.Text); t != "" {
		params.Set("text", t)
		desc = append(desc, strconv.Quote(t))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		params.Set(extra[i], extra[i+1])
	}
	if result != "" {
		params.Set("result", result)
		desc = append(desc, "→ "+result)
	}
	e.callLog(c, "<%s> %s", v.XMLName.Local, strings.Join(desc, " "))
	e.record(Event{Kind: KindVoiceVerb, Name: v.XMLName.Local, SID: c.sid, Params: params})
}

func (e *Emulator) verb(c *call, v *node, base string) (*source, error) {
	switch v.XMLName.Local {
	case "Say":
		e.verbEvent(c, v, "")
		_, err := e.wait(c, e.seconds(1), nil)
		return nil, err
	case "Pause":
		n, err := strconv.Atoi(v.attrOr("length", "1"))
		if err != nil || n < 0 {
			n = 1
		}
		e.verbEvent(c, v, "")
		_, err = e.wait(c, e.seconds(float64(n)), nil)
		return nil, err
	case "Play":
		if d, ok := v.attr("digits"); ok && strings.Trim(d, "0123456789*#w") != "" {
			// <Play digits> knows digits, * and # and w (half a second);
			// a W (which SendDigits knows) or anything else plays nothing.
			e.verbEvent(c, v, "refused: digits may hold only 0-9 * # w, skipped")
			return nil, nil
		}
		e.verbEvent(c, v, "")
		_, err := e.wait(c, e.seconds(playSeconds(v)), nil)
		return nil, err
	case "Gather":
		return e.gather(c, v, base)
	case "Redirect":
		target, err := resolve(base, strings.TrimSpace(v.Text))
		if err != nil {
			e.verbEvent(c, v, "error: "+err.Error())
			return nil, errAppError
		}
		e.verbEvent(c, v, "")
		return &source{name: "redirect", url: target, method: v.attrOr("method", "POST")}, nil
	case "Hangup":
		e.verbEvent(c, v, "")
		return nil, errHangupVerb
	case "Reject":
		e.verbEvent(c, v, "")
		e.mu.Lock()
		status := "busy"
		if c.status == "in-progress" {
			status = "completed"
		}
		e.terminateLocked(c, status)
		e.mu.Unlock()
		return nil, errEnded
	case "Connect":
		return e.connect(c, v, base)
	default:
		e.verbEvent(c, v, "unsupported by the sandbox, skipped")
		return nil, nil
	}
}

// playSeconds is how long a <Play> lasts: digits take 0.1 s each, w 0.5 s;
// audio 1 s.
func playSeconds(v *node) float64 {
	d, ok := v.attr("digits")
	if !ok {
		return 1
	}
	s := 0.0
	for _, r := range d {
		switch r {
		case 'w':
			s += 0.5
		default:
			s += 0.1
		}
	}
	return s
}

// resolve makes a TwiML URL absolute against the document's URL.
func resolve(base, ref string) (string, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	if u.IsAbs() {
		return ref, nil
	}
	if base == "" {
		return "", fmt.Errorf("relative URL %q in inline TwiML", ref)
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	return b.ResolveReference(u).String(), nil
}

// gather collects DTMF supplied through the control API.
func (e *Emulator) gather(c *call, v *node, base string) (*source, error) {
	numDigits, _ := strconv.Atoi(v.attrOr("numDigits", "0"))
	finishOnKey, set := v.attr("finishOnKey")
	if !set {
		finishOnKey = "#"
	}
	timeout, err := strconv.Atoi(v.attrOr("timeout", "5"))
	if err != nil || timeout < 1 {
		timeout = 5
	}
	dtmf := strings.Contains(v.attrOr("input", "dtmf"), "dtmf")
	e.verbEvent(c, v, "listening")

	hasDigits := func() bool { return dtmf && c.digits != "" }
prompts:
	for i := range v.Nodes {
		p := &v.Nodes[i]
		switch p.XMLName.Local {
		case "Say", "Play", "Pause":
			e.verbEvent(c, p, "")
			d := 1.0
			if p.XMLName.Local == "Play" {
				d = playSeconds(p)
			} else if p.XMLName.Local == "Pause" {
				if n, err := strconv.Atoi(p.attrOr("length", "1")); err == nil {
					d = float64(n)
				}
			}
			got, err := e.wait(c, e.seconds(d), hasDigits)
			if err != nil {
				return nil, err
			}
			if got {
				break prompts // a key press interrupts the prompt
			}
		}
	}

	var collected, finishedOn string
	for {
		done := false
		e.mu.Lock()
		for dtmf && c.digits != "" && !done {
			k := c.digits[0]
			c.digits = c.digits[1:]
			switch {
			case finishOnKey != "" && k == finishOnKey[0]:
				finishedOn, done = string(k), true
			default:
				collected += string(k)
				done = numDigits > 0 && len(collected) >= numDigits
			}
		}
		e.mu.Unlock()
		if done {
			break
		}
		got, err := e.wait(c, e.seconds(float64(timeout)), hasDigits)
		if err != nil {
			return nil, err
		}
		if !got {
			break // timeout: submit what we have
		}
	}

	if collected == "" && v.attrOr("actionOnEmptyResult", "false") != "true" {
		e.verbEvent(c, v, "no input")
		return nil, nil // Twilio falls through to the next verb
	}
	target := base
	if a, ok := v.attr("action"); ok && a != "" {
		if target, err = resolve(base, a); err != nil {
			e.verbEvent(c, v, "error: "+err.Error())
			return nil, errAppError
		}
	}
	e.verbEvent(c, v, "digits", "Digits", collected)
	if target == "" {
		return nil, nil // inline TwiML without action: nowhere to submit
	}
	return &source{name: "gather", url: target, method: v.attrOr("method", "POST"),
		params: url.Values{"Digits": {collected}, "FinishedOnKey": {finishedOn}}}, nil
}

// connect bridges the call into a Video room with <Connect><Room>.
func (e *Emulator) connect(c *call, v *node, base string) (*source, error) {
	var rn *node
	for i := range v.Nodes {
		if v.Nodes[i].XMLName.Local == "Room" {
			rn = &v.Nodes[i]
			break
		}
	}
	if rn == nil {
		e.verbEvent(c, v, "unsupported <Connect> noun, skipped")
		return nil, nil
	}
	name := strings.TrimSpace(rn.Text)
	identity := rn.attrOr("participantIdentity", c.sid)

	e.mu.Lock()
	r := e.roomByNameLocked(name)
	reason := ""
	switch {
	case r == nil || r.status != "in-progress":
		reason = "no in-progress room with that name"
	case r.typ != "group" && r.typ != "group-small":
		reason = "only group rooms accept PSTN participants"
	case r.connectedCount() >= min(r.maxParticipants, 35):
		reason = "room is full"
	}
	if reason != "" {
		e.mu.Unlock()
		e.verbEvent(c, rn, "failed: "+reason)
		return nil, nil // Twilio continues with the next verb
	}
	p := e.connectLocked(r, identity, "phone", c.sid)
	c.room, c.participant = r, p
	e.mu.Unlock()
	e.verbEvent(c, rn, "connected", "RoomSid", r.sid, "ParticipantSid", p.sid)

	_, err := e.wait(c, -1, func() bool { return c.participant == nil })
	if err != nil {
		e.mu.Lock()
		if c.participant != nil {
			e.disconnectLocked(c.room, c.participant, true)
			c.participant = nil
		}
		e.mu.Unlock()
		return nil, err
	}
	// The room ended or another leg took the identity: continue like Twilio.
	e.verbEvent(c, rn, "disconnected")
	if a, ok := v.attr("action"); ok && a != "" {
		target, err := resolve(base, a)
		if err != nil {
			return nil, errAppError
		}
		return &source{name: "connect-action", url: target, method: v.attrOr("method", "POST")}, nil
	}
	return nil, nil
}

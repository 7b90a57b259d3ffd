package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Participant kinds accepted by the control API (Join, JoinAs).
const (
	ParticipantBrowser = "browser" // audio and video tracks
	ParticipantPhone   = "phone"   // audio only
)

// Request bodies of the control API, shared by its handlers and Client.
type (
	joinRequest struct {
		Identity string `json:"identity"`
		Kind     string `json:"kind,omitempty"`  // default "browser"
		Token    string `json:"token,omitempty"` // the Video access token the client connects with; checked when present
	}
	advanceRequest struct {
		Seconds float64 `json:"seconds"`
	}
	incomingCallRequest struct {
		From string `json:"from"`
		To   string `json:"to,omitempty"` // default Options.PhoneNumber
	}
	digitsRequest struct {
		Digits string `json:"digits"`
	}
	incomingSMSRequest struct {
		From string `json:"from"`
		To   string `json:"to,omitempty"` // default Options.PhoneNumber
		Body string `json:"body"`
	}
)

// IncomingSMSResult is the answer of POST /messages/incoming: the inbound
// message as recorded, what our SMS webhook (Options.IncomingSMSURL) answered,
// and the <Message> replies in its TwiML, recorded as outbound-reply
// messages. WebhookStatus is 0 when the emulator has no IncomingSMSURL or the
// webhook could not be reached; WebhookError is set when it was not reached
// or answered non-2xx (the control request itself still succeeds).
//
// OptOutType is the keyword type Twilio saw in the whole body (STOP, START,
// HELP; "" for an ordinary message; the webhook is told only with
// Options.AdvancedOptOut), and TwilioReply Twilio's own automatic answer to
// it. A reply the webhook sends to a number that opted out is recorded
// failed with ErrorCode 21610.
type IncomingSMSResult struct {
	Message       MessageView   `json:"message"`
	WebhookStatus int           `json:"webhook_status"`
	WebhookError  string        `json:"webhook_error,omitempty"`
	Replies       []MessageView `json:"replies"`
	OptOutType    string        `json:"opt_out_type,omitempty"`
	TwilioReply   *MessageView  `json:"twilio_reply,omitempty"`
}

// Client is a typed client for an Emulator's control and inspection API,
// for tests and tools that drive the emulator over HTTP.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a Client for the emulator served at baseURL: the URL its
// Handler is mounted at, e.g. an httptest server's URL, or
// "http://localhost:8080/sandbox" for visitflow in sandbox mode (a trailing
// slash is ignored). hc nil means http.DefaultClient.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Error is what Client methods return when the emulator answers non-2xx.
type Error struct {
	Op         string // Client method, e.g. "Digits"
	Method     string // HTTP method
	Path       string // request path relative to the base URL
	StatusCode int    // HTTP status
	Code       int    // Twilio's error code when the answer names one (a refused access token: 20104…)
	Message    string // the control API's error message, else the body as text
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "(empty body)"
	}
	return fmt.Sprintf("sandbox %s: %s %s: %d %s: %s",
		e.Op, e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode), msg)
}

// ErrNotFound is wrapped by Room when no room has the name.
var ErrNotFound = errors.New("not found")

// StatusCode returns the HTTP status of a Client *Error in err's chain, or 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// Calls returns every call (GET /calls), oldest first.
func (c *Client) Calls(ctx context.Context) ([]CallView, error) {
	var out callList
	err := c.do(ctx, "Calls", http.MethodGet, "/calls", nil, &out)
	return out.Calls, err
}

// Messages returns every SMS (GET /messages), oldest first.
func (c *Client) Messages(ctx context.Context) ([]MessageView, error) {
	var out messageList
	err := c.do(ctx, "Messages", http.MethodGet, "/messages", nil, &out)
	return out.Messages, err
}

// Rooms returns every room (GET /rooms), oldest first, ended ones included.
func (c *Client) Rooms(ctx context.Context) ([]RoomView, error) {
	var out roomList
	err := c.do(ctx, "Rooms", http.MethodGet, "/rooms", nil, &out)
	return out.Rooms, err
}

// RoomsNamed returns the rooms (GET /rooms) whose UniqueName is name, oldest
// first: more than one when a room of that name ended and another was created.
func (c *Client) RoomsNamed(ctx context.Context, name string) ([]RoomView, error) {
	all, err := c.Rooms(ctx)
	if err != nil {
		return nil, fmt.Errorf("sandbox RoomsNamed %q: %w", name, err)
	}
	var out []RoomView
	for _, r := range all {
		if r.UniqueName == name {
			out = append(out, r)
		}
	}
	return out, nil
}

// Room returns the room whose UniqueName or SID is nameOrSID: by name, the
// in-progress one if there is one, else the newest. It fails wrapping
// ErrNotFound when there is none.
func (c *Client) Room(ctx context.Context, nameOrSID string) (RoomView, error) {
	all, err := c.Rooms(ctx)
	if err != nil {
		return RoomView{}, fmt.Errorf("sandbox Room %q: %w", nameOrSID, err)
	}
	found := -1
	for i, r := range all {
		if r.SID == nameOrSID {
			return r, nil
		}
		if r.UniqueName == nameOrSID && (found < 0 || all[found].Status != "in-progress") {
			found = i
		}
	}
	if found < 0 {
		return RoomView{}, fmt.Errorf("sandbox Room %q: no room with that name or SID: %w", nameOrSID, ErrNotFound)
	}
	return all[found], nil
}

// Events returns everything the emulator recorded (GET /events), in order.
func (c *Client) Events(ctx context.Context) ([]Event, error) {
	var out eventList
	err := c.do(ctx, "Events", http.MethodGet, "/events", nil, &out)
	return out.Events, err
}

// EventsFor returns the events of one resource (GET /events?sid=), in order.
func (c *Client) EventsFor(ctx context.Context, sid string) ([]Event, error) {
	var out eventList
	err := c.do(ctx, "EventsFor", http.MethodGet, "/events?sid="+url.QueryEscape(sid), nil, &out)
	return out.Events, err
}

// Join connects identity to the in-progress room named room from a browser
// (audio and video tracks): POST /rooms/{room}/participants. When no
// in-progress room has that name, the join creates an ad-hoc room, as a
// Twilio client connecting by name does: it sends no status callbacks. It
// fails with 409 when the room is full. A connected participant with the
// same identity is replaced.
func (c *Client) Join(ctx context.Context, room, identity string) (ParticipantView, error) {
	return c.join(ctx, "Join", room, identity, ParticipantBrowser, "")
}

// JoinAs is Join with a participant kind: ParticipantBrowser or
// ParticipantPhone (audio only).
func (c *Client) JoinAs(ctx context.Context, room, identity, kind string) (ParticipantView, error) {
	return c.join(ctx, "JoinAs", room, identity, kind, "")
}

// JoinWithToken is Join as a client connecting with the Video access token
// visitflow issued: the emulator checks it as Twilio does (signature with
// the API key secret, not expired, at most 24 h long, room grant, identity)
// and refuses a bad one with 401 or 403 and Twilio's code in Error.Code
// (20101, 20103, 20104, 20105, 20106, 20107, 20157).
func (c *Client) JoinWithToken(ctx context.Context, room, identity, token string) (ParticipantView, error) {
	return c.join(ctx, "JoinWithToken", room, identity, ParticipantBrowser, token)
}

func (c *Client) join(ctx context.Context, op, room, identity, kind, token string) (ParticipantView, error) {
	var p ParticipantView
	err := c.do(ctx, op, http.MethodPost, "/rooms/"+url.PathEscape(room)+"/participants",
		joinRequest{Identity: identity, Kind: kind, Token: token}, &p)
	return p, err
}

// Advance brings every room's empty/unused timeout d (Twilio time) closer:
// rooms whose timeout is now due end at once (POST /clock/advance), so a
// test sees an unused room close without waiting for it.
func (c *Client) Advance(ctx context.Context, d time.Duration) error {
	var out map[string]float64
	return c.do(ctx, "Advance", http.MethodPost, "/clock/advance", advanceRequest{Seconds: d.Seconds()}, &out)
}

// Leave disconnects the connected participant identity (or participant SID)
// from the room named room (or room SID): DELETE
// /rooms/{room}/participants/{identity}. It returns the participant, now
// disconnected; 404 when there is no such room or connected participant.
func (c *Client) Leave(ctx context.Context, room, identity string) (ParticipantView, error) {
	var p ParticipantView
	err := c.do(ctx, "Leave", http.MethodDelete,
		"/rooms/"+url.PathEscape(room)+"/participants/"+url.PathEscape(identity), nil, &p)
	return p, err
}

// IncomingCall has the PSTN number from dial our number (Options.PhoneNumber):
// POST /calls/incoming. It returns the new inbound call, ringing; the emulator
// then calls Options.IncomingVoiceURL and follows its TwiML. 400 when from is
// not E.164, 409 when the emulator has no IncomingVoiceURL.
func (c *Client) IncomingCall(ctx context.Context, from string) (CallView, error) {
	return c.incomingCall(ctx, "IncomingCall", from, "")
}

// IncomingCallTo is IncomingCall to another number than ours.
func (c *Client) IncomingCallTo(ctx context.Context, from, to string) (CallView, error) {
	return c.incomingCall(ctx, "IncomingCallTo", from, to)
}

func (c *Client) incomingCall(ctx context.Context, op, from, to string) (CallView, error) {
	var v CallView
	err := c.do(ctx, op, http.MethodPost, "/calls/incoming", incomingCallRequest{From: from, To: to}, &v)
	return v, err
}

// Digits has the far end of call callSID press digits (0-9, *, #): POST
// /calls/{sid}/digits. They are kept until a <Gather> consumes them, so they
// may be sent early. It returns the call (PendingDigits includes them); 400
// for bad digits, 404 for an unknown call, 409 for an ended one.
func (c *Client) Digits(ctx context.Context, callSID, digits string) (CallView, error) {
	var v CallView
	err := c.do(ctx, "Digits", http.MethodPost, "/calls/"+url.PathEscape(callSID)+"/digits",
		digitsRequest{Digits: digits}, &v)
	return v, err
}

// IncomingSMS has the number from text body to our number: POST
// /messages/incoming. The emulator calls Options.IncomingSMSURL before
// answering; see IncomingSMSResult. 400 when from is not E.164.
func (c *Client) IncomingSMS(ctx context.Context, from, body string) (IncomingSMSResult, error) {
	return c.incomingSMS(ctx, "IncomingSMS", from, "", body)
}

// IncomingSMSTo is IncomingSMS to another number than ours.
func (c *Client) IncomingSMSTo(ctx context.Context, from, to, body string) (IncomingSMSResult, error) {
	return c.incomingSMS(ctx, "IncomingSMSTo", from, to, body)
}

func (c *Client) incomingSMS(ctx context.Context, op, from, to, body string) (IncomingSMSResult, error) {
	var res IncomingSMSResult
	err := c.do(ctx, op, http.MethodPost, "/messages/incoming",
		incomingSMSRequest{From: from, To: to, Body: body}, &res)
	return res, err
}

// SetFaults replaces the emulator's injected faults (POST /faults) and
// returns them as set; see Faults.
func (c *Client) SetFaults(ctx context.Context, f Faults) (Faults, error) {
	var out Faults
	err := c.do(ctx, "SetFaults", http.MethodPost, "/faults", f, &out)
	return out, err
}

// Faults returns what is left of the injected faults (GET /faults).
func (c *Client) Faults(ctx context.Context) (Faults, error) {
	var out Faults
	err := c.do(ctx, "Faults", http.MethodGet, "/faults", nil, &out)
	return out, err
}

// ClearFaults removes every injected fault (DELETE /faults).
func (c *Client) ClearFaults(ctx context.Context) error {
	var out Faults
	return c.do(ctx, "ClearFaults", http.MethodDelete, "/faults", nil, &out)
}

// do sends one control/inspection request and decodes a 2xx JSON answer
// into out; any other answer is an *Error.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("sandbox %s: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox %s: %s %s: %w", op, method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("sandbox %s: %s %s: reading the answer: %w", op, method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &Error{Op: op, Method: method, Path: path, StatusCode: resp.StatusCode, Code: errorCode(raw), Message: errorMessage(raw)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("sandbox %s: %s %s: decoding %d answer: %w", op, method, path, resp.StatusCode, err)
	}
	return nil
}

// errorCode extracts Twilio's error code from an error body, or 0.
func errorCode(raw []byte) int {
	var body struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal(raw, &body)
	return body.Code
}

// errorMessage extracts the message of a control error body
// {"error":{"message":…}} or a Twilio-style {"message":…}; otherwise it
// returns the body as text (trimmed, at most 1 KiB).
func errorMessage(raw []byte) string {
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil {
		if body.Error.Message != "" {
			return body.Error.Message
		}
		if body.Message != "" {
			return body.Message
		}
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 1024 {
		s = s[:1024] + "…"
	}
	return s
}

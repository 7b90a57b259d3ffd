package sandbox

import (
	"net/http"
	"sort"
	"time"
)

// The inspection API shows everything unmasked: it is sandbox test data and
// exists only in sandbox mode. The view types below are what it serves (and
// what the control API answers); Client decodes into the same types.

// CallView is a call as GET /calls shows it (and POST /calls/incoming and
// POST /calls/{sid}/digits answer). Direction is "outbound-api" for calls
// placed through the REST API, "inbound" for POST /calls/incoming. Log is
// the call's history in words (verbs run, DTMF played or received…).
type CallView struct {
	SID                  string     `json:"sid"`
	Direction            string     `json:"direction"`
	From                 string     `json:"from"`
	To                   string     `json:"to"`
	Status               string     `json:"status"`
	AnsweredBy           string     `json:"answered_by,omitempty"`
	StatusCallback       string     `json:"status_callback,omitempty"`
	StatusCallbackEvents []string   `json:"status_callback_events,omitempty"`
	URL                  string     `json:"url,omitempty"`
	Twiml                string     `json:"twiml,omitempty"`
	SendDigits           string     `json:"send_digits,omitempty"`
	PendingDigits        string     `json:"pending_digits,omitempty"`
	Room                 string     `json:"room,omitempty"`
	ParticipantIdentity  string     `json:"participant_identity,omitempty"`
	CreatedAt            time.Time  `json:"created_at"`
	StartedAt            *time.Time `json:"started_at"`
	EndedAt              *time.Time `json:"ended_at"`
	Log                  []string   `json:"log"`
}

// MessageView is an SMS as GET /messages shows it. Direction is
// "outbound-api" (sent through the REST API), "inbound" (POST
// /messages/incoming) or "outbound-reply" (a <Message> our webhook answered).
type MessageView struct {
	SID            string    `json:"sid"`
	Direction      string    `json:"direction"`
	From           string    `json:"from"`
	To             string    `json:"to"`
	Body           string    `json:"body"`
	Status         string    `json:"status"`
	ErrorCode      int       `json:"error_code,omitempty"`
	Service        string    `json:"messaging_service_sid,omitempty"`
	StatusCallback string    `json:"status_callback,omitempty"`
	ValidityPeriod int       `json:"validity_period,omitempty"` // seconds, as requested
	Automatic      bool      `json:"automatic,omitempty"`       // Twilio's own reply to a STOP/START/HELP keyword
	CreatedAt      time.Time `json:"created_at"`
}

// RoomView is a Video room as GET /rooms shows it, with every participant
// it has had (connected or not), in joining order.
type RoomView struct {
	SID               string            `json:"sid"`
	UniqueName        string            `json:"unique_name"`
	Type              string            `json:"type"`
	Status            string            `json:"status"`
	StatusCallback    string            `json:"status_callback,omitempty"`
	AdHoc             bool              `json:"ad_hoc,omitempty"` // created by a client connecting by name: no status callback
	EmptyRoomTimeout  int               `json:"empty_room_timeout"`
	UnusedRoomTimeout int               `json:"unused_room_timeout"`
	MaxParticipants   int               `json:"max_participants"`
	CreatedAt         time.Time         `json:"created_at"`
	EndedAt           *time.Time        `json:"ended_at"`
	Participants      []ParticipantView `json:"participants"`
}

// ParticipantView is a room participant. Kind is "browser" or "phone";
// Status "connected" or "disconnected"; Tracks are "kind:sid" of the tracks
// it published ("audio:MT…", plus "video:MT…" for a browser unless the room
// is audio-only); CallSID is set
// for a call bridged with <Connect><Room>.
type ParticipantView struct {
	SID            string     `json:"sid"`
	Identity       string     `json:"identity"`
	Kind           string     `json:"kind"`
	Status         string     `json:"status"`
	CallSID        string     `json:"call_sid,omitempty"`
	ConnectedAt    time.Time  `json:"connected_at"`
	DisconnectedAt *time.Time `json:"disconnected_at"`
	Tracks         []string   `json:"tracks"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// callView shows c. e.mu must be held.
func (e *Emulator) callView(c *call) CallView {
	v := CallView{
		SID: c.sid, Direction: c.direction, From: c.from, To: c.to, Status: c.status,
		AnsweredBy: c.answeredBy, StatusCallback: c.statusCallback,
		URL: c.src.url, Twiml: c.src.twiml, SendDigits: c.sendDigits, PendingDigits: c.digits,
		CreatedAt: c.created, StartedAt: timePtr(c.start), EndedAt: timePtr(c.end),
		Log: append([]string{}, c.log...),
	}
	for ev := range c.events {
		v.StatusCallbackEvents = append(v.StatusCallbackEvents, ev)
	}
	sort.Strings(v.StatusCallbackEvents)
	if c.participant != nil {
		v.Room = c.room.uniqueName
		v.ParticipantIdentity = c.participant.identity
	}
	return v
}

// messageView shows m. e.mu must be held.
func (e *Emulator) messageView(m *message) MessageView {
	return MessageView{
		SID: m.sid, Direction: m.direction, From: m.from, To: m.to, Body: m.body,
		Status: m.status, ErrorCode: m.errCode, Service: m.service,
		StatusCallback: m.statusCallback, ValidityPeriod: m.validity, Automatic: m.automatic,
		CreatedAt: m.created,
	}
}

// participantView shows p. e.mu must be held.
func (e *Emulator) participantView(p *participant) ParticipantView {
	v := ParticipantView{
		SID: p.sid, Identity: p.identity, Kind: p.kind, Status: p.status, CallSID: p.callSID,
		ConnectedAt: p.connected, DisconnectedAt: timePtr(p.ended), Tracks: []string{},
	}
	for _, t := range p.tracks {
		v.Tracks = append(v.Tracks, t.kind+":"+t.sid)
	}
	return v
}

// roomView shows r. e.mu must be held.
func (e *Emulator) roomView(r *room) RoomView {
	v := RoomView{
		SID: r.sid, UniqueName: r.uniqueName, Type: r.typ, Status: r.status,
		StatusCallback: r.statusCallback, AdHoc: r.adHoc, EmptyRoomTimeout: r.emptyTimeout,
		UnusedRoomTimeout: r.unusedTimeout, MaxParticipants: r.maxParticipants,
		CreatedAt: r.created, EndedAt: timePtr(r.ended), Participants: []ParticipantView{},
	}
	for _, p := range r.participants {
		v.Participants = append(v.Participants, e.participantView(p))
	}
	return v
}

// The inspection API's list answers: {"calls": […]}, {"messages": […]},
// {"rooms": […]}, {"events": […]}, each in creation (recording) order.
type callList struct {
	Calls []CallView `json:"calls"`
}

type messageList struct {
	Messages []MessageView `json:"messages"`
}

type roomList struct {
	Rooms []RoomView `json:"rooms"`
}

type eventList struct {
	Events []Event `json:"events"`
}

// Inspect: GET /calls
func (e *Emulator) handleListCalls(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	list := callList{Calls: []CallView{}}
	for _, c := range e.calls {
		list.Calls = append(list.Calls, e.callView(c))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

// Inspect: GET /messages
func (e *Emulator) handleListMessages(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	list := messageList{Messages: []MessageView{}}
	for _, m := range e.messages {
		list.Messages = append(list.Messages, e.messageView(m))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

// Inspect: GET /rooms
func (e *Emulator) handleListRooms(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	list := roomList{Rooms: []RoomView{}}
	for _, r := range e.rooms {
		list.Rooms = append(list.Rooms, e.roomView(r))
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, list)
}

// Inspect: GET /events[?sid=]
func (e *Emulator) handleListEvents(w http.ResponseWriter, r *http.Request) {
	sid := r.URL.Query().Get("sid")
	list := eventList{Events: []Event{}}
	for _, ev := range e.Events() {
		if sid != "" && ev.SID != sid {
			continue
		}
		list.Events = append(list.Events, ev)
	}
	writeJSON(w, http.StatusOK, list)
}

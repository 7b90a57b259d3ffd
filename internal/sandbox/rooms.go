package sandbox

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// room is a Video room. Mutable fields are guarded by Emulator.mu.
type room struct {
	sid, uniqueName, typ        string
	statusCallback, scMethod    string
	maxParticipants             int
	emptyTimeout, unusedTimeout int // minutes
	audioOnly                   bool
	status                      string
	created, updated, ended     time.Time
	seq                         int
	participants                []*participant
	queue                       serial // callback deliveries, in order
	timer                       *time.Timer
	timerGen                    int
	timerDue                    time.Time // wall clock, while timer is armed
	adHoc                       bool      // created by a client connecting: no status callback
}

type participant struct {
	sid, identity, kind string
	callSID             string // set for a phone leg bridged with <Connect><Room>
	status              string
	connected, ended    time.Time
	tracks              []track
}

type track struct{ sid, kind, name string }

func (r *room) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.timerGen++
	r.timerDue = time.Time{}
}

func (r *room) connectedCount() int {
	n := 0
	for _, p := range r.participants {
		if p.status == "connected" {
			n++
		}
	}
	return n
}

// serial runs queued functions one at a time, in order, on a tracked
// goroutine. Its fields are guarded by Emulator.mu.
type serial struct {
	q       []func()
	running bool
}

// pushLocked queues f on s. e.mu must be held.
func (e *Emulator) pushLocked(s *serial, f func()) {
	s.q = append(s.q, f)
	if s.running || e.closed {
		return
	}
	s.running = true
	e.goLocked(func() {
		for {
			e.mu.Lock()
			if len(s.q) == 0 || e.closed {
				s.running = false
				e.mu.Unlock()
				return
			}
			next := s.q[0]
			s.q = s.q[1:]
			e.mu.Unlock()
			next()
		}
	})
}

// roomByNameLocked finds an in-progress room by UniqueName, or any room by SID.
func (e *Emulator) roomByNameLocked(sidOrName string) *room {
	if r, ok := e.roomBy[sidOrName]; ok {
		return r
	}
	for _, r := range e.rooms {
		if r.uniqueName == sidOrName && r.status == "in-progress" {
			return r
		}
	}
	return nil
}

// roomEventLocked queues a Video status callback for r. e.mu must be held.
func (e *Emulator) roomEventLocked(r *room, event string, p *participant, t *track) {
	now := e.now()
	params := url.Values{
		"AccountSid":          {e.opts.AccountSID},
		"RoomName":            {r.uniqueName},
		"RoomSid":             {r.sid},
		"RoomStatus":          {r.status},
		"RoomType":            {r.typ},
		"StatusCallbackEvent": {event},
		"Timestamp":           {now.Format(iso8601ms)},
		"SequenceNumber":      {strconv.Itoa(r.seq)},
	}
	r.seq++
	if p != nil {
		params.Set("ParticipantSid", p.sid)
		params.Set("ParticipantStatus", p.status)
		params.Set("ParticipantIdentity", p.identity)
		if event == "participant-disconnected" {
			params.Set("ParticipantDuration", strconv.Itoa(int(p.ended.Sub(p.connected).Seconds())))
		}
	}
	if t != nil {
		params.Set("TrackSid", t.sid)
		params.Set("TrackKind", t.kind)
		params.Set("TrackName", t.name)
	}
	if event == "room-ended" {
		params.Set("RoomDuration", strconv.Itoa(int(r.ended.Sub(r.created).Seconds())))
	}
	req := request{kind: KindVideoStatus, name: event, sid: r.sid, method: r.scMethod, url: r.statusCallback, params: params}
	e.pushLocked(&r.queue, func() { _, _, _ = e.deliver(req) })
}

// armTimerLocked starts the unused (nobody ever joined) or empty (everybody
// left) timeout. e.mu must be held.
func (e *Emulator) armTimerLocked(r *room) {
	r.stopTimer()
	if r.status != "in-progress" || r.connectedCount() > 0 || e.closed {
		return
	}
	minutes := r.emptyTimeout
	if len(r.participants) == 0 {
		minutes = r.unusedTimeout
	}
	e.startTimerLocked(r, time.Now().Add(time.Duration(minutes)*e.opts.MinuteLength))
}

// startTimerLocked ends r at due (wall clock) unless someone connects or
// the timer is re-armed first. e.mu must be held.
func (e *Emulator) startTimerLocked(r *room, due time.Time) {
	r.stopTimer()
	gen := r.timerGen
	r.timerDue = due
	r.timer = time.AfterFunc(time.Until(due), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if gen != r.timerGen || r.status != "in-progress" || r.connectedCount() > 0 || e.closed {
			return
		}
		e.endRoomLocked(r)
	})
}

// advanceLocked moves the emulator's room clocks d (Twilio time) ahead:
// every armed empty/unused timeout is that much closer, and those now due
// end their rooms at once. e.mu must be held.
func (e *Emulator) advanceLocked(d time.Duration) {
	wall := time.Duration(float64(d) / float64(time.Minute) * float64(e.opts.MinuteLength))
	for _, r := range e.rooms {
		if r.timer == nil || r.status != "in-progress" {
			continue
		}
		due := r.timerDue.Add(-wall)
		if !due.After(time.Now()) {
			e.endRoomLocked(r)
			continue
		}
		e.startTimerLocked(r, due)
	}
}

// Control: POST /clock/advance {"seconds": 3600} brings every room's
// empty/unused timeout that many Twilio seconds closer, so tests see rooms
// close without waiting for them. Calls are not affected.
func (e *Emulator) handleAdvance(w http.ResponseWriter, req *http.Request) {
	var body advanceRequest
	if err := decodeJSON(req, &body); err != nil || body.Seconds <= 0 {
		controlError(w, http.StatusBadRequest, "seconds: a positive number of Twilio seconds")
		return
	}
	e.mu.Lock()
	e.advanceLocked(time.Duration(body.Seconds * float64(time.Second)))
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]float64{"advanced_seconds": body.Seconds})
}

// endRoomLocked disconnects everybody, then ends the room. e.mu must be held.
func (e *Emulator) endRoomLocked(r *room) {
	r.stopTimer()
	for _, p := range r.participants {
		if p.status == "connected" {
			e.disconnectLocked(r, p, false)
		}
	}
	r.status = "completed"
	r.ended = e.now()
	r.updated = r.ended
	e.roomEventLocked(r, "room-ended", nil, nil)
}

// connectLocked adds a participant (replacing one with the same identity, as
// Twilio does with error 53205) and queues its callbacks. e.mu must be held.
func (e *Emulator) connectLocked(r *room, identity, kind, callSID string) *participant {
	for _, old := range r.participants {
		if old.identity == identity && old.status == "connected" {
			e.disconnectLocked(r, old, true)
		}
	}
	p := &participant{sid: newSID("PA"), identity: identity, kind: kind, callSID: callSID,
		status: "connected", connected: e.now()}
	p.tracks = append(p.tracks, track{sid: newSID("MT"), kind: "audio", name: "audio"})
	if kind == "browser" && !r.audioOnly {
		p.tracks = append(p.tracks, track{sid: newSID("MT"), kind: "video", name: "video"})
	}
	r.participants = append(r.participants, p)
	r.stopTimer()
	r.updated = p.connected
	e.roomEventLocked(r, "participant-connected", p, nil)
	for i := range p.tracks {
		e.roomEventLocked(r, "track-added", p, &p.tracks[i])
	}
	return p
}

// disconnectLocked removes p from r. With rearm, the empty-room timer starts
// when nobody is left. A bridged call is told. e.mu must be held.
func (e *Emulator) disconnectLocked(r *room, p *participant, rearm bool) {
	p.status = "disconnected"
	p.ended = e.now()
	r.updated = p.ended
	for i := range p.tracks {
		e.roomEventLocked(r, "track-removed", p, &p.tracks[i])
	}
	e.roomEventLocked(r, "participant-disconnected", p, nil)
	if c := e.callBy[p.callSID]; c != nil && c.participant == p {
		c.participant = nil
		c.wakeUp()
	}
	if rearm {
		e.armTimerLocked(r)
	}
}

// REST: POST /v1/Rooms
func (e *Emulator) handleCreateRoom(w http.ResponseWriter, req *http.Request) {
	f := req.PostForm
	typ := orDefault(f.Get("Type"), "group")
	switch typ {
	case "group", "group-small", "peer-to-peer", "go":
	default:
		writeError(w, http.StatusBadRequest, 53126, "Room type is invalid")
		return
	}
	cb := f.Get("StatusCallback")
	if cb != "" && !validURL(cb) {
		writeError(w, http.StatusBadRequest, 53100, "StatusCallback is not a valid URL")
		return
	}
	method := orDefault(f.Get("StatusCallbackMethod"), "POST")
	if method != "POST" && method != "GET" {
		writeError(w, http.StatusBadRequest, 53100, "StatusCallbackMethod must be GET or POST")
		return
	}
	maxP, ok := intParam(f, "MaxParticipants", 50, 1, 50)
	if !ok {
		writeError(w, http.StatusBadRequest, 53100, "MaxParticipants must be between 1 and 50")
		return
	}
	empty, ok1 := intParam(f, "EmptyRoomTimeout", 5, 1, 60)
	unused, ok2 := intParam(f, "UnusedRoomTimeout", 5, 1, 60)
	if !ok1 || !ok2 {
		writeError(w, http.StatusBadRequest, 53100, "EmptyRoomTimeout and UnusedRoomTimeout must be 1 to 60 minutes")
		return
	}
	name := f.Get("UniqueName")
	if len(name) > 128 {
		writeError(w, http.StatusBadRequest, 53102, "Room name is too long")
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if name != "" {
		for _, r := range e.rooms {
			if r.uniqueName == name && r.status == "in-progress" {
				writeError(w, http.StatusBadRequest, 53113, "Room exists")
				return
			}
		}
	}
	r := e.newRoomLocked(name, typ, cb, method, maxP, empty, unused, f.Get("AudioOnly") == "true")
	writeJSON(w, http.StatusCreated, e.roomJSON(r))
}

// newRoomLocked opens an in-progress room, sends room-created and arms its
// unused timeout. e.mu must be held.
func (e *Emulator) newRoomLocked(name, typ, cb, method string, maxP, empty, unused int, audioOnly bool) *room {
	now := e.now()
	r := &room{
		sid: newSID("RM"), uniqueName: name, typ: typ,
		statusCallback: cb, scMethod: method,
		maxParticipants: maxP, emptyTimeout: empty, unusedTimeout: unused,
		audioOnly: audioOnly,
		status:    "in-progress", created: now, updated: now,
	}
	if r.uniqueName == "" {
		r.uniqueName = r.sid
	}
	e.rooms = append(e.rooms, r)
	e.roomBy[r.sid] = r
	e.roomEventLocked(r, "room-created", nil, nil)
	e.armTimerLocked(r)
	return r
}

// REST: GET /v1/Rooms/{Sid} (SID, or UniqueName of an in-progress room)
func (e *Emulator) handleFetchRoom(w http.ResponseWriter, req *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roomByNameLocked(req.PathValue("Sid"))
	if r == nil {
		notFound(w, req)
		return
	}
	writeJSON(w, http.StatusOK, e.roomJSON(r))
}

// REST: POST /v1/Rooms/{Sid} Status=completed
func (e *Emulator) handleUpdateRoom(w http.ResponseWriter, req *http.Request) {
	status := req.PostForm.Get("Status")
	if status == "" {
		writeError(w, http.StatusBadRequest, 20001, "Missing required parameter Status in the post body")
		return
	}
	if status != "completed" {
		writeError(w, http.StatusBadRequest, 53100, "Status can only be set to completed")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roomByNameLocked(req.PathValue("Sid"))
	if r == nil {
		notFound(w, req)
		return
	}
	if r.status != "in-progress" {
		writeError(w, http.StatusBadRequest, 53112, "Unable to update Room status: the room is not in-progress")
		return
	}
	e.endRoomLocked(r)
	writeJSON(w, http.StatusAccepted, e.roomJSON(r))
}

// REST: GET /v1/Rooms/{RoomSid}/Participants[?Status=&Identity=]
func (e *Emulator) handleListParticipants(w http.ResponseWriter, req *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roomByNameLocked(req.PathValue("RoomSid"))
	if r == nil {
		notFound(w, req)
		return
	}
	q := req.URL.Query()
	list := []participantJSON{}
	for _, p := range r.participants {
		if s := q.Get("Status"); s != "" && s != p.status {
			continue
		}
		if id := q.Get("Identity"); id != "" && id != p.identity {
			continue
		}
		list = append(list, e.participantJSON(r, p))
	}
	page := "https://video.twilio.com/v1/Rooms/" + r.sid + "/Participants?PageSize=50&Page=0"
	writeJSON(w, http.StatusOK, map[string]any{
		"participants": list,
		"meta": map[string]any{
			"page": 0, "page_size": 50, "first_page_url": page, "previous_page_url": nil,
			"url": page, "next_page_url": nil, "key": "participants",
		},
	})
}

// REST: GET /v1/Rooms/{RoomSid}/Participants/{Sid} (SID or connected identity)
func (e *Emulator) handleFetchParticipant(w http.ResponseWriter, req *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roomByNameLocked(req.PathValue("RoomSid"))
	if r != nil {
		id := req.PathValue("Sid")
		for _, p := range r.participants {
			if p.sid == id || (p.identity == id && p.status == "connected") {
				writeJSON(w, http.StatusOK, e.participantJSON(r, p))
				return
			}
		}
	}
	notFound(w, req)
}

// roomJSON is video.v1.room.
type roomJSON struct {
	Sid                          string            `json:"sid"`
	Status                       string            `json:"status"`
	DateCreated                  *string           `json:"date_created"`
	DateUpdated                  *string           `json:"date_updated"`
	AccountSid                   string            `json:"account_sid"`
	EnableTurn                   bool              `json:"enable_turn"`
	UniqueName                   string            `json:"unique_name"`
	StatusCallback               *string           `json:"status_callback"`
	StatusCallbackMethod         string            `json:"status_callback_method"`
	EndTime                      *string           `json:"end_time"`
	Duration                     *int              `json:"duration"`
	Type                         string            `json:"type"`
	MaxParticipants              int               `json:"max_participants"`
	MaxParticipantDuration       int               `json:"max_participant_duration"`
	MaxConcurrentPublishedTracks int               `json:"max_concurrent_published_tracks"`
	RecordParticipantsOnConnect  bool              `json:"record_participants_on_connect"`
	VideoCodecs                  []string          `json:"video_codecs"`
	MediaRegion                  string            `json:"media_region"`
	AudioOnly                    bool              `json:"audio_only"`
	EmptyRoomTimeout             int               `json:"empty_room_timeout"`
	UnusedRoomTimeout            int               `json:"unused_room_timeout"`
	LargeRoom                    bool              `json:"large_room"`
	URL                          string            `json:"url"`
	Links                        map[string]string `json:"links"`
}

func (e *Emulator) roomJSON(r *room) roomJSON {
	base := "https://video.twilio.com/v1/Rooms/" + r.sid
	j := roomJSON{
		Sid: r.sid, Status: r.status,
		DateCreated: fmtISO(r.created), DateUpdated: fmtISO(r.updated),
		AccountSid: e.opts.AccountSID, EnableTurn: true, UniqueName: r.uniqueName,
		StatusCallback: strPtr(r.statusCallback), StatusCallbackMethod: r.scMethod,
		EndTime: fmtISO(r.ended), Type: r.typ,
		MaxParticipants: r.maxParticipants, MaxParticipantDuration: 14400,
		MaxConcurrentPublishedTracks: 170, VideoCodecs: []string{"VP8", "H264"},
		MediaRegion: "us1", AudioOnly: r.audioOnly,
		EmptyRoomTimeout: r.emptyTimeout, UnusedRoomTimeout: r.unusedTimeout,
		URL: base,
		Links: map[string]string{
			"participants":    base + "/Participants",
			"recordings":      base + "/Recordings",
			"recording_rules": base + "/RecordingRules",
			"transcriptions":  base + "/Transcriptions",
		},
	}
	if !r.ended.IsZero() {
		d := int(math.Round(r.ended.Sub(r.created).Seconds()))
		j.Duration = &d
	}
	return j
}

// participantJSON is video.v1.room.room_participant.
type participantJSON struct {
	Sid         string            `json:"sid"`
	RoomSid     string            `json:"room_sid"`
	AccountSid  string            `json:"account_sid"`
	Status      string            `json:"status"`
	Identity    string            `json:"identity"`
	DateCreated *string           `json:"date_created"`
	DateUpdated *string           `json:"date_updated"`
	StartTime   *string           `json:"start_time"`
	EndTime     *string           `json:"end_time"`
	Duration    *int              `json:"duration"`
	URL         string            `json:"url"`
	Links       map[string]string `json:"links"`
}

func (e *Emulator) participantJSON(r *room, p *participant) participantJSON {
	base := "https://video.twilio.com/v1/Rooms/" + r.sid + "/Participants/" + p.sid
	updated := p.connected
	if !p.ended.IsZero() {
		updated = p.ended
	}
	j := participantJSON{
		Sid: p.sid, RoomSid: r.sid, AccountSid: e.opts.AccountSID, Status: p.status,
		Identity: p.identity, DateCreated: fmtISO(p.connected), DateUpdated: fmtISO(updated),
		StartTime: fmtISO(p.connected), EndTime: fmtISO(p.ended), URL: base,
		Links: map[string]string{
			"published_tracks":  base + "/PublishedTracks",
			"subscribed_tracks": base + "/SubscribedTracks",
			"subscribe_rules":   base + "/SubscribeRules",
			"anonymize":         base + "/Anonymize",
		},
	}
	if !p.ended.IsZero() {
		d := int(p.ended.Sub(p.connected).Seconds())
		j.Duration = &d
	}
	return j
}

// Control: POST /rooms/{name}/participants {"identity","kind"}
func (e *Emulator) handleJoinRoom(w http.ResponseWriter, req *http.Request) {
	var body joinRequest
	if err := decodeJSON(req, &body); err != nil {
		controlError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if body.Identity == "" || len(body.Identity) > 128 {
		controlError(w, http.StatusBadRequest, "identity: required, at most 128 characters")
		return
	}
	kind := orDefault(body.Kind, "browser")
	if kind != "browser" && kind != "phone" {
		controlError(w, http.StatusBadRequest, `kind: "browser" or "phone"`)
		return
	}
	name := req.PathValue("name")
	if body.Token != "" {
		if te := e.checkAccessToken(body.Token, name, body.Identity); te != nil {
			writeTokenError(w, te)
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roomByNameLocked(name)
	switch {
	case r != nil && r.status != "in-progress":
		controlError(w, http.StatusNotFound, "the room with that SID has ended (error 53106)")
		return
	case r == nil && len(name) > 128:
		controlError(w, http.StatusBadRequest, "room name: at most 128 characters")
		return
	case r == nil:
		// A client connecting by name when no in-progress room has it
		// creates an ad-hoc room, which has no status callback.
		r = e.newRoomLocked(name, "group", "", "POST", 50, 5, 5, false)
		r.adHoc = true
	}
	if r.connectedCount() >= r.maxParticipants {
		controlError(w, http.StatusConflict, "room is full (error 53105)")
		return
	}
	p := e.connectLocked(r, body.Identity, kind, "")
	writeJSON(w, http.StatusCreated, e.participantView(p))
}

// Control: DELETE /rooms/{name}/participants/{identity}
func (e *Emulator) handleLeaveRoom(w http.ResponseWriter, req *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.roomByNameLocked(req.PathValue("name"))
	if r == nil {
		controlError(w, http.StatusNotFound, "no such room")
		return
	}
	id := req.PathValue("identity")
	for _, p := range r.participants {
		if p.status == "connected" && (p.identity == id || p.sid == id) {
			e.disconnectLocked(r, p, true)
			writeJSON(w, http.StatusOK, e.participantView(p))
			return
		}
	}
	controlError(w, http.StatusNotFound, "no connected participant with that identity")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// intParam parses an optional integer form field within [lo, hi].
func intParam(f url.Values, name string, def, lo, hi int) (int, bool) {
	s := f.Get(name)
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, false
	}
	return n, true
}

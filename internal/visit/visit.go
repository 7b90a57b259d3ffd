// Package visit is the domain of a telehealth visit: who takes part, the facts
// Twilio reports about it, and the state derived from those facts.
//
// The state is a function of facts (contract §5). Facts only accumulate and
// each is keyed naturally (a ParticipantSid connecting, the room ending), so
// applying the same callbacks in any order, any number of times, derives the
// same state. The package imports only the standard library.
package visit

import (
	"errors"
	"regexp"
	"time"
)

// Visit is one scheduled telehealth visit as stored. Changes go through
// methods that record facts; Pending collects what a change wants written
// next to it (timeline entries, jobs) so the store can commit all of it in
// one atomic step.
type Visit struct {
	ID          string    `json:"id"`
	ScheduledAt time.Time `json:"scheduled_at"`
	Timezone    string    `json:"timezone"`
	Provider    Person    `json:"provider"`
	Patient     Person    `json:"patient"`
	Room        Room      `json:"room"`
	DialIn      DialIn    `json:"dial_in"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// HeardAt is when a Twilio callback about the visit last arrived.
	// Reconciliation reads Twilio's REST API for visits whose callbacks
	// went quiet; it moves in steps of heardStep (see Heard).
	HeardAt *time.Time `json:"heard_at,omitempty"`

	// FirstScheduledAt is the time the visit was created for, kept once a
	// reschedule moved ScheduledAt (the timeline's creation row says it).
	FirstScheduledAt *time.Time `json:"first_scheduled_at,omitempty"`

	// Schedule counts reschedules; jobs that belong to one schedule carry it
	// in their task ID so a reschedule's new jobs never collide with the old.
	Schedule int `json:"schedule,omitempty"`
	// Transitions counts state changes; it names each transition's job.
	Transitions int `json:"transitions,omitempty"`

	Facts       Facts             `json:"facts,omitzero"`
	Interpreter *InterpreterLeg   `json:"interpreter,omitempty"`
	Invites     map[string]Invite `json:"invites,omitempty"`
	// ConfirmedAt is when the patient confirmed the visit (replied C to a
	// reminder); nil until then.
	ConfirmedAt *time.Time `json:"confirmed_at,omitempty"`

	// Done records side effects that happened, by purpose ("reminder:24h:s0",
	// "followup"), so a retried or duplicated job does nothing the second time.
	Done map[string]time.Time `json:"done,omitempty"`
	// Extra holds small per-feature records (opaque to the domain) that
	// workflows keep on the visit, e.g. claimed-but-unconfirmed sends.
	Extra map[string]string `json:"extra,omitempty"`

	// RequestHash fingerprints the creating request, making POST /v1/visits
	// with a client-supplied id idempotent (same body → same visit, else 409).
	RequestHash string `json:"request_hash,omitempty"`

	pending Pending
}

// Person is a provider or patient. Name and Phone are PHI: they live only in
// the visit record and never in logs, metrics, task payloads or errors.
type Person struct {
	Identity string `json:"identity"`
	Name     string `json:"name,omitempty"`
	Phone    string `json:"phone,omitempty"`
}

// Room is the visit's Twilio Video Group Room. Name is fixed at creation.
type Room struct {
	Name string `json:"name"`
	SID  string `json:"sid,omitempty"`
}

// DialIn tells an audio-only patient how to call in.
type DialIn struct {
	Number string `json:"number,omitempty"`
	PIN    string `json:"pin,omitempty"`
}

// InterpreterLeg is the outbound call to an interpreter line.
type InterpreterLeg struct {
	Line        string     `json:"line"`
	State       LegState   `json:"state"`
	CallSID     string     `json:"call_sid,omitempty"`
	Attempts    int        `json:"attempts"`
	RequestedAt time.Time  `json:"requested_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	// Request counts interpreter requests on this visit; it names the
	// request's jobs so a new request never collides with an old one.
	Request int `json:"request,omitempty"`
	// LastOutcome is why the last attempt did not bridge (busy, no-answer,
	// failed, machine…), empty while none failed.
	LastOutcome   string     `json:"last_outcome,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	BridgedAt     *time.Time `json:"bridged_at,omitempty"`
}

// Invite is a guest or interpreter invitation; only a hash of its secret is kept.
type Invite struct {
	Role      string    `json:"role"`
	Identity  string    `json:"identity"`
	Name      string    `json:"name,omitempty"`
	Phone     string    `json:"phone,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Revoked   bool      `json:"revoked,omitempty"`
}

// ValidID reports whether id is a valid visit id: 1 to 64 of the
// contract's characters, A-Z a-z 0-9 _ - (checked on every callback, so a
// loop rather than the regexp ^[A-Za-z0-9_-]{1,64}$, which cost 2 % of a
// callback's CPU).
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// ValidPhone reports whether p is an E.164 phone number.
func ValidPhone(p string) bool { return e164.MatchString(p) }

// RoomName is the Group Room's UniqueName for a visit id.
func RoomName(id string) string { return "visit-" + id }

// DialInIdentity is the participant identity of the patient's phone leg.
func (v *Visit) DialInIdentity() string { return "dialin-" + v.ID }

// InterpreterIdentity is the participant identity of the interpreter leg.
func (v *Visit) InterpreterIdentity() string { return "interpreter-" + v.ID }

// RoleOf tells who a room participant is. Guests and interpreters never count
// as provider or patient.
func (v *Visit) RoleOf(identity string) Role {
	switch identity {
	case "":
		return RoleGuest
	case v.Provider.Identity:
		return RoleProvider
	case v.Patient.Identity, v.DialInIdentity():
		return RolePatient
	case v.InterpreterIdentity():
		return RoleInterpreter
	}
	return RoleGuest
}

// Ways a participant takes part (ParticipantView.Via).
const (
	ViaPhone = "phone"
	ViaVideo = "video"
)

// ViaOf tells how a room participant takes part: the patient's dial-in leg
// and the interpreter leg are phone calls bridged into the room.
func (v *Visit) ViaOf(identity string) string {
	if identity != "" && (identity == v.DialInIdentity() || identity == v.InterpreterIdentity()) {
		return ViaPhone
	}
	return ViaVideo
}

// Role is what a participant is to the visit.
type Role string

// Roles.
const (
	RoleProvider    Role = "provider"
	RolePatient     Role = "patient"
	RoleInterpreter Role = "interpreter"
	RoleGuest       Role = "guest"
)

// Pending is what one change wants committed with it.
type Pending struct {
	Timeline []Entry
	Jobs     []Job
}

// Log adds a timeline entry to the change being made.
func (v *Visit) Log(e Entry) { v.pending.Timeline = append(v.pending.Timeline, e) }

// Enqueue adds a job to the change's outbox.
func (v *Visit) Enqueue(j Job) { v.pending.Jobs = append(v.pending.Jobs, j) }

// PendingTimeline returns a copy of the timeline entries the change recorded so far.
func (v *Visit) PendingTimeline() []Entry { return append([]Entry(nil), v.pending.Timeline...) }

// PendingJobs returns a copy of the jobs the change recorded so far.
func (v *Visit) PendingJobs() []Job { return append([]Job(nil), v.pending.Jobs...) }

// TakePending returns and clears what the change recorded.
func (v *Visit) TakePending() Pending {
	p := v.pending
	v.pending = Pending{}
	return p
}

// MarkDone records that the side effect named purpose happened at t. It
// reports false when it had already happened.
func (v *Visit) MarkDone(purpose string, t time.Time) bool {
	if _, ok := v.Done[purpose]; ok {
		return false
	}
	if v.Done == nil {
		v.Done = map[string]time.Time{}
	}
	v.Done[purpose] = t
	return true
}

// heardStep is the resolution of HeardAt: a callback that changes nothing
// else rewrites the visit at most this often just to say it was heard.
const heardStep = 15 * time.Second

// Heard records that a Twilio callback about the visit arrived at t.
func (v *Visit) Heard(t time.Time) {
	if v.HeardAt == nil || t.Sub(*v.HeardAt) >= heardStep {
		t = t.UTC()
		v.HeardAt = &t
	}
}

// QuietSince reports whether no callback arrived after t.
func (v *Visit) QuietSince(t time.Time) bool { return v.HeardAt == nil || !v.HeardAt.After(t) }

// Confirm records that the patient confirmed the visit at t. It reports
// false when the visit was confirmed already (the first confirmation stands).
func (v *Visit) Confirm(t time.Time) bool {
	if v.ConfirmedAt != nil {
		return false
	}
	t = t.UTC()
	v.ConfirmedAt = &t
	return true
}

// IsDone reports whether the side effect named purpose already happened.
func (v *Visit) IsDone(purpose string) bool {
	_, ok := v.Done[purpose]
	return ok
}

// Entry is one line of a visit's timeline. Summaries never carry PHI.
type Entry struct {
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Type    string    `json:"type"`
	Summary string    `json:"summary"`
	// State is the visit's state as of At, derived when the timeline is read,
	// so it is the same whatever order the facts arrived in.
	State State `json:"state,omitempty"`
}

// Timeline sources.
const (
	SourceVideo     = "twilio.video"
	SourceVoice     = "twilio.voice"
	SourceSMS       = "twilio.sms"
	SourceAPI       = "api"
	SourceWorker    = "worker"
	SourceScheduler = "scheduler"
	// SourceREST marks what Twilio's REST API reported when a callback had
	// not delivered it (reconciliation).
	SourceREST = "twilio.rest"
)

// Job is an outbox entry: an Asynq task the change wants run. ID is the Asynq
// task ID, derived from the visit and the purpose, so sending the same entry
// twice is harmless. Payload carries ids only.
type Job struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Payload   []byte    `json:"payload,omitempty"`
	Queue     string    `json:"queue,omitempty"`
	ProcessAt time.Time `json:"process_at,omitempty"`
	// Delete asks for the pending task ID to be removed instead (reschedule, cancel).
	Delete bool `json:"delete,omitempty"`
}

// Errors every layer shares: the store returns them, workflows wrap them,
// the HTTP edge translates them.
var (
	// ErrInvalidChange is wrapped by changes the state does not allow (API: 422).
	ErrInvalidChange = errors.New("visit: change not allowed in this state")
	// ErrNotFound: no visit (or invite) with that id (API: 404).
	ErrNotFound = errors.New("visit: not found")
	// ErrDuplicate: a callback whose idempotency token was already applied.
	ErrDuplicate = errors.New("visit: duplicate delivery")
	// ErrBadCursor: a list cursor this service did not make (API: 400).
	ErrBadCursor = errors.New("visit: invalid cursor")
)

// ListQuery selects visits by schedule time, newest first unless
// OldestFirst.
type ListQuery struct {
	From, To    time.Time // zero: unbounded
	State       State
	Cursor      string // opaque, from a previous page of the same order
	Limit       int
	OldestFirst bool
}

// Change is the outcome of one committed update.
type Change struct {
	Visit *Visit
	// Jobs are the outbox entries the change wrote; hand them to Asynq and
	// then acknowledge them.
	Jobs []Job
	// Unchanged is true when the update changed nothing (a duplicate fact).
	Unchanged bool
}

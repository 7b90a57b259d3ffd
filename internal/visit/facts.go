package visit

import (
	"fmt"
	"sort"
	"time"
)

// Facts are what is known to have happened. They only accumulate; every
// field is set at most once from its natural key, which is what makes
// delivery order and repetition irrelevant.
type Facts struct {
	// Participants by ParticipantSid. A reconnect is a new ParticipantSid.
	Participants map[string]*Participant `json:"participants,omitempty"`
	RoomEndedAt  *time.Time              `json:"room_ended_at,omitempty"`
	CancelledAt  *time.Time              `json:"cancelled_at,omitempty"`
	// NoShowAt is when the no-show deadline was found passed.
	NoShowAt *time.Time `json:"no_show_at,omitempty"`
}

// Participant is one connection to the room (one ParticipantSid).
type Participant struct {
	SID            string     `json:"sid"`
	Identity       string     `json:"identity"`
	ConnectedAt    *time.Time `json:"connected_at,omitempty"`
	DisconnectedAt *time.Time `json:"disconnected_at,omitempty"`
	// Duration is Twilio's ParticipantDuration, which lets a disconnect that
	// arrives before its connect still place the connection in time.
	Duration time.Duration `json:"duration,omitempty"`
}

// joinedAt is when the connection started, inferred from the disconnect when
// the connect callback has not arrived (yet).
func (p *Participant) joinedAt() (time.Time, bool) {
	switch {
	case p.ConnectedAt != nil:
		return *p.ConnectedAt, true
	case p.DisconnectedAt != nil:
		return p.DisconnectedAt.Add(-p.Duration), true
	}
	return time.Time{}, false
}

// interval is [start, end) of the connection; end is forever while connected.
func (p *Participant) interval() (start, end time.Time, ok bool) {
	start, ok = p.joinedAt()
	end = forever
	if p.DisconnectedAt != nil {
		end = *p.DisconnectedAt
	}
	return start, end, ok
}

// forever ends an open connection; now is after every recorded fact but
// before forever, so State sees open connections as connected.
var (
	forever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	now     = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// setOnce sets *dst to t unless already set; it reports whether it changed.
// Duplicates carry the same value, so keeping the first is order independent.
func setOnce(dst **time.Time, t time.Time) bool {
	if *dst != nil {
		return false
	}
	t = t.UTC()
	*dst = &t
	return true
}

// ParticipantConnected records that participant sid (identity) connected at t.
// It reports whether this was new.
func (v *Visit) ParticipantConnected(sid, identity string, t time.Time) bool {
	p := v.participant(sid, identity)
	return setOnce(&p.ConnectedAt, t)
}

// ParticipantDisconnected records that participant sid disconnected at t
// after being connected for duration d (0 when unknown).
func (v *Visit) ParticipantDisconnected(sid, identity string, t time.Time, d time.Duration) bool {
	p := v.participant(sid, identity)
	if p.Duration == 0 && d > 0 {
		p.Duration = d
	}
	return setOnce(&p.DisconnectedAt, t)
}

func (v *Visit) participant(sid, identity string) *Participant {
	if v.Facts.Participants == nil {
		v.Facts.Participants = map[string]*Participant{}
	}
	p, ok := v.Facts.Participants[sid]
	if !ok {
		p = &Participant{SID: sid}
		v.Facts.Participants[sid] = p
	}
	if p.Identity == "" {
		p.Identity = identity
	}
	return p
}

// RoomEnded records that the room ended at t (Twilio's room-ended or /end).
func (v *Visit) RoomEnded(t time.Time) bool { return setOnce(&v.Facts.RoomEndedAt, t) }

// Cancel records the cancellation. A visit that already finished cannot be
// cancelled (ErrInvalidChange); cancelling twice is a no-op returning false.
func (v *Visit) Cancel(t time.Time) (bool, error) {
	switch v.State() {
	case Cancelled:
		return false, nil
	case Completed:
		return false, v.Refuse("cancel")
	}
	return setOnce(&v.Facts.CancelledAt, t), nil
}

// NoShowDeadlinePassed records that the no-show check ran at t.
func (v *Visit) NoShowDeadlinePassed(t time.Time) bool { return setOnce(&v.Facts.NoShowAt, t) }

// State is the visit's state derived from all facts recorded so far.
func (v *Visit) State() State { return v.StateAt(now) }

// Finished reports whether the visit is over: completed, cancelled, or a
// no-show whose room has ended. A finished visit gets no room, token,
// invite, interpreter or dial-in, and nothing more is scheduled for it.
func (v *Visit) Finished() bool {
	switch v.State() {
	case Completed, Cancelled:
		return true
	case NoShow:
		return v.Facts.RoomEndedAt != nil
	}
	return false
}

// Refuse is the error for an action the visit's state does not allow,
// naming the state: "cannot reschedule a waiting visit".
func (v *Visit) Refuse(action string) error {
	return fmt.Errorf("%w: cannot %s a %s visit", ErrInvalidChange, action, v.State())
}

// RefuseIfFinished refuses action on a finished visit (see Finished).
func (v *Visit) RefuseIfFinished(action string) error {
	if v.Finished() {
		return v.Refuse(action)
	}
	return nil
}

// StateAt derives the state from the facts that had happened by t. It is the
// one place the rules of contract §5 live; read it as the table it is.
func (v *Visit) StateAt(t time.Time) State {
	f := &v.Facts
	happened := func(at *time.Time) bool { return at != nil && !at.After(t) }

	if happened(f.CancelledAt) {
		return Cancelled
	}
	together := v.togetherBy(t)
	if happened(f.RoomEndedAt) {
		if together {
			return Completed
		}
		return NoShow
	}
	provider, patient, anyone, patientEver := v.presence(t)
	switch {
	case provider && patient:
		return InProgress
	case patient:
		return Waiting
	case happened(f.NoShowAt) && !patientEver:
		return NoShow
	case provider:
		return ProviderWaiting
	case anyone:
		return Interrupted
	}
	return Scheduled
}

// presence tells, as of t, whether the provider and the patient are
// connected, whether either of them ever joined (guests and interpreters do
// not count), and whether the patient ever did.
func (v *Visit) presence(t time.Time) (provider, patient, anyone, patientEver bool) {
	for _, p := range v.Facts.Participants {
		start, end, ok := p.interval()
		if !ok || start.After(t) {
			continue
		}
		role := v.RoleOf(p.Identity)
		switch role {
		case RolePatient:
			patientEver, anyone = true, true
		case RoleProvider:
			anyone = true
		}
		if end.After(t) {
			switch role {
			case RoleProvider:
				provider = true
			case RolePatient:
				patient = true
			}
		}
	}
	return
}

// togetherBy reports whether the provider and the patient were connected at
// the same time at some moment up to t.
func (v *Visit) togetherBy(t time.Time) bool {
	var providers, patients []*Participant
	for _, p := range v.Facts.Participants {
		switch v.RoleOf(p.Identity) {
		case RoleProvider:
			providers = append(providers, p)
		case RolePatient:
			patients = append(patients, p)
		}
	}
	for _, a := range providers {
		as, ae, ok := a.interval()
		if !ok {
			continue
		}
		for _, b := range patients {
			bs, be, ok := b.interval()
			if !ok {
				continue
			}
			start, end := later(as, bs), earlier(ae, be)
			if start.Before(end) && !start.After(t) {
				return true
			}
		}
	}
	return false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// ParticipantView is a participant as the API shows it.
type ParticipantView struct {
	Identity       string     `json:"identity"`
	Role           Role       `json:"role"`
	SID            string     `json:"sid"`
	Connected      bool       `json:"connected"`
	ConnectedAt    *time.Time `json:"connected_at"`
	DisconnectedAt *time.Time `json:"disconnected_at"`
	// Via is how the participant takes part: "phone" for a PSTN leg
	// bridged into the room (the patient's dial-in, the interpreter line),
	// "video" for everyone else.
	Via string `json:"via"`
}

// ParticipantList lists participants by join time (then SID, so the order is
// stable whatever order their callbacks came in).
func (v *Visit) ParticipantList() []ParticipantView {
	out := make([]ParticipantView, 0, len(v.Facts.Participants))
	for _, p := range v.Facts.Participants {
		view := ParticipantView{
			Identity:       p.Identity,
			Role:           v.RoleOf(p.Identity),
			Via:            v.ViaOf(p.Identity),
			SID:            p.SID,
			Connected:      p.DisconnectedAt == nil && p.ConnectedAt != nil,
			DisconnectedAt: p.DisconnectedAt,
		}
		if start, ok := p.joinedAt(); ok {
			view.ConnectedAt = &start
		}
		out = append(out, view)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].ConnectedAt, out[j].ConnectedAt
		if a != nil && b != nil && !a.Equal(*b) {
			return a.Before(*b)
		}
		return out[i].SID < out[j].SID
	})
	return out
}

// Timeline rows derived when the timeline is read, never stored: the state
// is a function of the facts, so the state-changed rows are the same
// whatever order the facts arrived in; the creation row is what the visit
// record says (and costs a scheduled visit no timeline of its own).
const (
	TypeStateChanged = "state-changed"
	TypeScheduled    = "scheduled"
)

// CreationEntry is the timeline's first row: the visit scheduled, when it
// was created, for the time it was created for.
func (v *Visit) CreationEntry() Entry {
	first := v.ScheduledAt
	if v.FirstScheduledAt != nil {
		first = *v.FirstScheduledAt
	}
	return Entry{At: v.CreatedAt, Source: SourceAPI, Type: TypeScheduled,
		Summary: "visit scheduled for " + first.UTC().Format(time.RFC3339)}
}

// Reschedule moves the visit to at, keeping the time it was created for.
func (v *Visit) Reschedule(at time.Time) {
	if v.FirstScheduledAt == nil {
		first := v.ScheduledAt
		v.FirstScheduledAt = &first
	}
	v.ScheduledAt = at
}

// WithStates puts the creation row first (state scheduled), fills each
// entry's State as of its time, orders the timeline by time (keeping arrival order among equal
// times), and adds a state-changed row after each entry at which the state
// changed, with that entry's time and source. Creation and state-changed
// rows stored by earlier versions are replaced by the derived ones.
func (v *Visit) WithStates(stored []Entry) []Entry {
	entries := make([]Entry, 0, len(stored))
	for _, e := range stored {
		if e.Type != TypeStateChanged && e.Type != TypeScheduled {
			entries = append(entries, e)
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].At.Before(entries[j].At) })
	out := make([]Entry, 0, 1+len(entries)+len(entries)/2)
	// The creation row comes first and says scheduled, even when a fact is
	// stamped earlier than the visit's creation (Twilio's clock against
	// ours): a visit is created scheduled, and nothing happened before it.
	creation := v.CreationEntry()
	creation.State = Scheduled
	out = append(out, creation)
	prev := Scheduled
	for _, e := range entries {
		e.State = v.StateAt(e.At)
		out = append(out, e)
		if e.State != prev {
			out = append(out, Entry{At: e.At, Source: e.Source, Type: TypeStateChanged,
				Summary: string(prev) + " → " + string(e.State), State: e.State})
			prev = e.State
		}
	}
	return out
}

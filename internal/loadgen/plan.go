package loadgen

import "fmt"

// Step is one callback of a planned visit: Event (participant-connected,
// participant-disconnected or room-ended) for Role's connection number Conn.
// Every connection has its own ParticipantSid, as Twilio gives a participant
// who drops and rejoins a new one.
type Step struct {
	Event string
	Role  string // patient, provider or guest (room-ended: none)
	Conn  int
}

// The roles a Step can name.
const (
	Patient  = "patient"
	Provider = "provider"
	Guest    = "guest"
)

// RealisticVisit is what one ordinary visit receives: the patient joins, the
// provider joins, drops and rejoins with a new ParticipantSid, both leave and
// the room ends. Seven callbacks, each a state change.
var RealisticVisit = []Step{
	{Event: "participant-connected", Role: Patient, Conn: 0},
	{Event: "participant-connected", Role: Provider, Conn: 1},
	{Event: "participant-disconnected", Role: Provider, Conn: 1},
	{Event: "participant-connected", Role: Provider, Conn: 2},
	{Event: "participant-disconnected", Role: Patient, Conn: 0},
	{Event: "participant-disconnected", Role: Provider, Conn: 2},
	{Event: "room-ended"},
}

// LargeVisit is a visit that grows: patient and provider join, then guests
// guests connect one after another (the visit's participant list grows to
// guests+2), all of them leave, patient and provider leave, the room ends.
func LargeVisit(guests int) []Step {
	plan := []Step{
		{Event: "participant-connected", Role: Patient, Conn: 0},
		{Event: "participant-connected", Role: Provider, Conn: 1},
	}
	for g := 0; g < guests; g++ {
		plan = append(plan, Step{Event: "participant-connected", Role: Guest, Conn: 2 + g})
	}
	for g := 0; g < guests; g++ {
		plan = append(plan, Step{Event: "participant-disconnected", Role: Guest, Conn: 2 + g})
	}
	return append(plan,
		Step{Event: "participant-disconnected", Role: Patient, Conn: 0},
		Step{Event: "participant-disconnected", Role: Provider, Conn: 1},
		Step{Event: "room-ended"})
}

// callbackOf is step i of visit id's plan.
func callbackOf(id string, i int, s Step) Callback {
	c := Callback{VisitID: id, Event: s.Event, Seq: i}
	switch s.Role {
	case Patient:
		c.Identity = "pat-" + id
	case Provider:
		c.Identity = "prov-" + id
	case Guest:
		c.Identity = fmt.Sprintf("guest-%d-%s", s.Conn, id)
	}
	if s.Role != "" {
		c.ParticipantSID = fmt.Sprintf("PA%s%08d", sidHex(id), s.Conn)
	}
	return c
}

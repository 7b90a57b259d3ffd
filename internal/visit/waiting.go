package visit

import "time"

// The virtual waiting room: when the patient's wait began, and whether a
// new wait is really a reconnect of the last one.

// WaitingSince is when the patient's current wait began: the earliest
// still-open connection of the patient while the visit is waiting. ok is
// false when the visit is not waiting.
func (v *Visit) WaitingSince() (since time.Time, ok bool) {
	if v.State() != Waiting {
		return time.Time{}, false
	}
	for _, p := range v.Facts.Participants {
		start, known := p.joinedAt()
		if !known || p.DisconnectedAt != nil || v.RoleOf(p.Identity) != RolePatient {
			continue
		}
		if !ok || start.Before(since) {
			since, ok = start, true
		}
	}
	return since, ok
}

// WaitingDuring reports whether the visit was waiting at some moment in
// [from, to). The state only changes at a fact's time, so it is enough to
// look at from and at every connect and disconnect inside the interval.
func (v *Visit) WaitingDuring(from, to time.Time) bool {
	if !from.Before(to) {
		return false
	}
	if v.StateAt(from) == Waiting {
		return true
	}
	for _, p := range v.Facts.Participants {
		moments := []*time.Time{p.DisconnectedAt}
		if start, ok := p.joinedAt(); ok {
			moments = append(moments, &start)
		}
		for _, t := range moments {
			if t != nil && t.After(from) && t.Before(to) && v.StateAt(*t) == Waiting {
				return true
			}
		}
	}
	return false
}

// ByPhone reports whether the patient is in the room only by the phone
// dial-in leg (no video connection of theirs is open).
func (v *Visit) ByPhone() bool {
	phone := false
	for _, p := range v.Facts.Participants {
		if p.DisconnectedAt != nil || p.ConnectedAt == nil {
			continue
		}
		switch p.Identity {
		case v.DialInIdentity():
			phone = true
		case v.Patient.Identity:
			return false
		}
	}
	return phone
}

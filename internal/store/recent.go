package store

import "sync"

// A Twilio callback usually finds its visit as this process left it: the
// callbacks of one visit come one after another, and most of them to the
// replica that took the one before. Update therefore keeps, for the visits
// it lately read or wrote, the stored record at its revision (a snapshot)
// and starts from it instead of reading Redis: the commit script still
// compares the revision, so a snapshot another writer overtook is refused,
// and the script's refusal carries the visit as it now is, so a stale
// snapshot costs no more round trips than a read (two) and a fresh one
// saves the read (one instead of two).
//
// Revisions make this safe: every change moves the revision, and a visit
// created again under the same id starts from a random one (firstRevision),
// so a snapshot of an earlier incarnation cannot pass the check.

// snapshot is a visit as stored at one revision: the record and what this
// process knows of its guests at that revision.
type snapshot struct {
	rev int64
	raw []byte // the stored record, "<rev>\n<json>"
	// guests are guests' stored JSON by ParticipantSid; a SID mapped to ""
	// is known not to be a guest.
	guests map[string]string
	// complete: guests holds every guest the visit has.
	complete bool
}

// maxSnapshotGuests bounds the guests a snapshot keeps: beyond it, only
// those of the latest change stay (a large visit's guests are read one by
// one again, as they would be without snapshots).
const maxSnapshotGuests = 16

// guestsFor returns the guests a change of scope guest (everyone, or one
// SID) starts from, and whether the snapshot knows them.
func (sn *snapshot) guestsFor(guest string) (map[string]string, bool) {
	if guest == everyone {
		if !sn.complete {
			return nil, false
		}
		all := make(map[string]string, len(sn.guests))
		for sid, p := range sn.guests {
			if p != "" {
				all[sid] = p
			}
		}
		return all, true
	}
	p, known := sn.guests[guest]
	switch {
	case p != "":
		return map[string]string{guest: p}, true
	case known || sn.complete:
		return nil, true
	}
	return nil, false
}

// after is the snapshot once a change was committed at rev with value (nil:
// the record was not rewritten) and wrote guests.
func (sn *snapshot) after(rev int64, value []byte, guests map[string][]byte) *snapshot {
	next := &snapshot{rev: sn.rev, raw: sn.raw, guests: sn.guests, complete: sn.complete}
	if value != nil {
		next.rev, next.raw = rev, value
	}
	if len(guests) == 0 {
		return next
	}
	if len(next.guests)+len(guests) > maxSnapshotGuests {
		next.guests, next.complete = nil, false
	}
	merged := make(map[string]string, len(next.guests)+len(guests))
	for sid, p := range next.guests {
		merged[sid] = p
	}
	for sid, p := range guests {
		merged[sid] = string(p)
	}
	next.guests = merged
	return next
}

// recentVisits holds the snapshots of the visits lately read or written,
// at most about 2 × size: new ones go to the current generation, and when
// it is full the previous generation is dropped and the current one takes
// its place, so a visit still in use moves forward and an idle one ages
// out without any per-entry bookkeeping.
type recentVisits struct {
	mu       sync.Mutex
	size     int
	current  map[string]*snapshot
	previous map[string]*snapshot
}

func newRecentVisits(size int) *recentVisits {
	return &recentVisits{size: size, current: map[string]*snapshot{}}
}

// get returns id's snapshot, or nil.
func (r *recentVisits) get(id string) *snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sn, ok := r.current[id]; ok {
		return sn
	}
	sn, ok := r.previous[id]
	if ok {
		delete(r.previous, id)
		r.putLocked(id, sn)
	}
	return sn
}

// put makes sn id's snapshot; nil forgets id.
func (r *recentVisits) put(id string, sn *snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sn == nil {
		delete(r.current, id)
		delete(r.previous, id)
		return
	}
	r.putLocked(id, sn)
}

func (r *recentVisits) putLocked(id string, sn *snapshot) {
	if _, ok := r.current[id]; !ok && len(r.current) >= r.size {
		r.previous, r.current = r.current, make(map[string]*snapshot, r.size)
	}
	r.current[id] = sn
	delete(r.previous, id)
}

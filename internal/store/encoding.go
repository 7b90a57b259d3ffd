package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"

	json "github.com/goccy/go-json"

	"github.com/visitflow/visitflow/internal/visit"
)

// The store's JSON is github.com/goccy/go-json: every callback decodes and
// re-encodes its visit, and goccy does both about four times faster than
// encoding/json with byte-identical output (map keys sorted, the same
// escaping and errors), so records written by either read the same and an
// unchanged visit still encodes to the bytes it was read from
// (BenchmarkEncodeVisit, BenchmarkDecodeVisit, TestStoreJSONIsEncodingJSON).
//
// A stored visit (the value of vf:visit:{id}) is its revision, a newline,
// and the visit's JSON: "7\n{…}". The revision counts the visit's writes;
// the commit script compares it with the revision the change was made from
// (revisionHead), so a change computed from a stale read is refused without
// the script decoding anything. A value that starts with "{" is a visit
// written before revisions existed: revision 0, whose head is "{".

// firstRevision is the revision a new visit starts at: random rather than 1,
// so a visit deleted and created again under the same id never passes
// through a revision its earlier incarnation had, and a snapshot kept of
// that one (recent.go) is refused by the commit's check.
func firstRevision() int64 { return 1 + rand.Int64N(1<<40) }

// encodeVisit is the stored form of v at revision rev.
func encodeVisit(v *visit.Visit, rev int64) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(data)+21)
	out = strconv.AppendInt(out, rev, 10)
	out = append(out, '\n')
	return append(out, data...), nil
}

// splitVisit returns the revision and the JSON of a stored visit.
func splitVisit(raw []byte) (int64, []byte, error) {
	if len(raw) > 0 && raw[0] == '{' {
		return 0, raw, nil
	}
	head, body, ok := bytes.Cut(raw, []byte{'\n'})
	rev, err := strconv.ParseInt(string(head), 10, 64)
	if !ok || err != nil {
		return 0, nil, fmt.Errorf("store: decode visit: no revision")
	}
	return rev, body, nil
}

// revisionHead is what a stored visit at revision rev starts with: the
// commit script's check.
func revisionHead(rev int64) string {
	if rev == 0 {
		return "{"
	}
	return strconv.FormatInt(rev, 10) + "\n"
}

// decode reads a stored visit.
func decode(raw []byte) (*visit.Visit, error) {
	v, _, err := decodeRevision(raw)
	return v, err
}

// decodeRevision reads a stored visit and its revision.
func decodeRevision(raw []byte) (*visit.Visit, int64, error) {
	rev, body, err := splitVisit(raw)
	if err != nil {
		return nil, 0, err
	}
	var v visit.Visit
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, 0, fmt.Errorf("store: decode visit: %w", err)
	}
	return &v, rev, nil
}

// A visit's guests (participants whose role is guest: they never count for
// the state) are kept apart from the record, one field each in the hash
// vf:visit:{id}:guests (ParticipantSid → JSON of visit.Participant). A
// guest's callback then reads and writes the record and that one guest,
// so a visit with a hundred guests costs each callback what a visit with
// none does. Reads of the whole visit merge them back. A record written
// before the split holds its guests inline; they move to the hash on its
// next write.

// encodeRecord encodes v at rev without its guests: the stored record.
func encodeRecord(v *visit.Visit, rev int64) ([]byte, error) {
	all := v.Facts.Participants
	core := all
	for _, p := range all {
		if v.RoleOf(p.Identity) == visit.RoleGuest {
			core = make(map[string]*visit.Participant, len(all))
			for sid, p := range all {
				if v.RoleOf(p.Identity) != visit.RoleGuest {
					core[sid] = p
				}
			}
			break
		}
	}
	v.Facts.Participants = core
	defer func() { v.Facts.Participants = all }()
	return encodeVisit(v, rev)
}

// encodeGuests encodes each of v's guests (SID → JSON).
func encodeGuests(v *visit.Visit) (map[string][]byte, error) {
	var guests map[string][]byte
	for sid, p := range v.Facts.Participants {
		if v.RoleOf(p.Identity) != visit.RoleGuest {
			continue
		}
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode participant %s: %w", sid, err)
		}
		if guests == nil {
			guests = map[string][]byte{}
		}
		guests[sid] = b
	}
	return guests, nil
}

// decodeWithGuests reads a stored visit and merges its guests (SID → JSON).
func decodeWithGuests(raw []byte, guests map[string]string) (*visit.Visit, error) {
	v, err := decode(raw)
	if err != nil {
		return nil, err
	}
	return v, mergeGuests(v, guests)
}

// mergeGuests adds the guests read from the hash (SID → JSON) to v.
func mergeGuests(v *visit.Visit, guests map[string]string) error {
	for sid, raw := range guests {
		var p visit.Participant
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return fmt.Errorf("store: decode participant %s of %s: %w", sid, v.ID, err)
		}
		if v.Facts.Participants == nil {
			v.Facts.Participants = map[string]*visit.Participant{}
		}
		v.Facts.Participants[sid] = &p
	}
	return nil
}

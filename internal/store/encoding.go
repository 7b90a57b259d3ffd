package store

import (
	"bytes"
	"fmt"
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

package store

import (
	"encoding/base64"
	"encoding/json"
	"errors"
)

// ErrBadCursor is returned for a cursor this store did not make.
var ErrBadCursor = errors.New("store: invalid cursor")

// cursor is where a listing page ends: the max score still to read and how
// many members at that score were already returned.
type cursor struct {
	Max    string `json:"m"`
	Offset int64  `json:"o"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Max == "" {
		return cursor{}, ErrBadCursor
	}
	return c, nil
}

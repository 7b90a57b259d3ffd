package store

import (
	"context"
	"fmt"
	"time"
)

// IndexReplies records that a reply from the number whose keyed hash is
// hash answers visit id (the visit of the latest patient SMS to that
// number), until expires (at least a minute from now).
func (s *Store) IndexReplies(ctx context.Context, hash, id string, expires time.Time) error {
	ttl := time.Until(expires)
	if ttl < time.Minute {
		ttl = time.Minute
	}
	if err := s.rdb.Set(ctx, s.keys.replyIndex(hash), id, ttl).Err(); err != nil {
		return fmt.Errorf("store: index replies: %w", err)
	}
	return nil
}

// VisitForReplies returns the visit a reply from the number whose keyed
// hash is hash answers, or visit.ErrNotFound.
func (s *Store) VisitForReplies(ctx context.Context, hash string) (string, error) {
	return s.lookup(ctx, s.keys.replyIndex(hash))
}

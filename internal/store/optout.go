package store

import (
	"context"
	"fmt"
	"time"
)

// SetOptOut records (out=true) or clears (out=false) the opt-out of the phone
// number whose keyed hash is hash. The number itself is never stored.
func (s *Store) SetOptOut(ctx context.Context, hash string, out bool, at time.Time) error {
	var err error
	if out {
		err = s.rdb.Set(ctx, s.keys.optOut(hash), at.UTC().Format(time.RFC3339), 0).Err()
	} else {
		err = s.rdb.Del(ctx, s.keys.optOut(hash)).Err()
	}
	if err != nil {
		return fmt.Errorf("store: set opt-out: %w", err)
	}
	return nil
}

// OptedOut reports whether the number with keyed hash hash has opted out.
func (s *Store) OptedOut(ctx context.Context, hash string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.keys.optOut(hash)).Result()
	if err != nil {
		return false, fmt.Errorf("store: opt-out lookup: %w", err)
	}
	return n > 0, nil
}

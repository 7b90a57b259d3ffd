package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys of the phone-leg and invite features (issue 5):
//
//	vf:idx:invite:<sha256 hex>   visit id for an invite secret's hash (expires)
//	vf:rl:dialin:<sha256 hex>    failed dial-in PIN entries of one caller (expires)
//
// Neither key holds a secret or a phone number: invites are indexed by the
// hash of their secret, callers by a hash of their number.
func inviteIndexKey(hash string) string  { return prefix + "idx:invite:" + hash }
func dialInFailKey(caller string) string { return prefix + "rl:dialin:" + caller }

// IndexInvite remembers that the invite whose secret hashes to hash belongs
// to visit id, until expires.
func (s *Store) IndexInvite(ctx context.Context, hash, id string, expires time.Time) error {
	ttl := time.Until(expires)
	if ttl < time.Minute {
		ttl = time.Minute
	}
	if err := s.rdb.Set(ctx, inviteIndexKey(hash), id, ttl).Err(); err != nil {
		return fmt.Errorf("store: index invite: %w", err)
	}
	return nil
}

// VisitForInvite returns the visit id of an invite hash, or ErrNotFound.
func (s *Store) VisitForInvite(ctx context.Context, hash string) (string, error) {
	return s.lookup(ctx, inviteIndexKey(hash))
}

// AddDialInFailure counts one failed PIN entry by caller (a hash of the
// number) and returns the failures within window, counted from the first.
func (s *Store) AddDialInFailure(ctx context.Context, caller string, window time.Duration) (int, error) {
	pipe := s.rdb.TxPipeline()
	n := pipe.Incr(ctx, dialInFailKey(caller))
	pipe.ExpireNX(ctx, dialInFailKey(caller), window)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("store: count dial-in failure: %w", err)
	}
	return int(n.Val()), nil
}

// DialInFailures returns the failed PIN entries counted for caller.
func (s *Store) DialInFailures(ctx context.Context, caller string) (int, error) {
	n, err := s.rdb.Get(ctx, dialInFailKey(caller)).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("store: dial-in failures: %w", err)
	}
	return n, nil
}

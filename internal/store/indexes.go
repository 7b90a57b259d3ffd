package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/visit"
)

// ReservePIN claims pin for visit id until expires; false when another
// visit holds it.
func (s *Store) ReservePIN(ctx context.Context, pin, id string, expires time.Time) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, pinIndexKey(pin), id, time.Until(expires)).Result()
	if err != nil {
		return false, fmt.Errorf("store: reserve pin: %w", err)
	}
	return ok, nil
}

// VisitForPIN returns the visit id holding a dial-in PIN.
func (s *Store) VisitForPIN(ctx context.Context, pin string) (string, error) {
	return s.lookup(ctx, pinIndexKey(pin))
}

// IndexCall remembers that call sid belongs to visit id.
func (s *Store) IndexCall(ctx context.Context, sid, id string) error {
	if err := s.rdb.Set(ctx, callIndexKey(sid), id, 30*24*time.Hour).Err(); err != nil {
		return fmt.Errorf("store: index call: %w", err)
	}
	return nil
}

// VisitForRoom returns the visit id for a room UniqueName, or visit.ErrNotFound.
func (s *Store) VisitForRoom(ctx context.Context, name string) (string, error) {
	return s.lookup(ctx, roomIndexKey(name))
}

// VisitForCall returns the visit id for a CallSid, or visit.ErrNotFound.
func (s *Store) VisitForCall(ctx context.Context, sid string) (string, error) {
	return s.lookup(ctx, callIndexKey(sid))
}

func (s *Store) lookup(ctx context.Context, key string) (string, error) {
	id, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", visit.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("store: lookup: %w", err)
	}
	return id, nil
}

// Reschedule moves the visit in the schedule index.
func (s *Store) Reschedule(ctx context.Context, id string, at time.Time) error {
	return s.rdb.ZAdd(ctx, scheduleKey, redis.Z{Score: float64(at.UnixMilli()), Member: id}).Err()
}

// Neither the invite index nor the dial-in counter holds a secret or a
// phone number: invites are indexed by the hash of their secret, callers by
// a keyed hash of their number.

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

// VisitForInvite returns the visit id of an invite hash, or visit.ErrNotFound.
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

package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/visit"
)

// VisitForPIN returns the visit id holding a dial-in PIN.
func (s *Store) VisitForPIN(ctx context.Context, pin string) (string, error) {
	return s.lookup(ctx, s.keys.pinIndex(pin))
}

// IndexCall remembers that call sid belongs to visit id.
func (s *Store) IndexCall(ctx context.Context, sid, id string) error {
	if err := s.rdb.Set(ctx, s.keys.callIndex(sid), id, 30*24*time.Hour).Err(); err != nil {
		return fmt.Errorf("store: index call: %w", err)
	}
	return nil
}

// VisitForRoom returns the visit id for a room UniqueName, or
// visit.ErrNotFound. A visit's room is always named visit.RoomName(id), so
// the id is read from the name: no index to store per visit, nor to keep
// in step. The id may name no visit (a room of another system on the same
// account); the update that follows finds none and the callback is
// unmatched, as with a stale index entry.
func (s *Store) VisitForRoom(_ context.Context, name string) (string, error) {
	if id, ok := strings.CutPrefix(name, visit.RoomName("")); ok && visit.ValidID(id) {
		return id, nil
	}
	return "", visit.ErrNotFound
}

// VisitForCall returns the visit id for a CallSid, or visit.ErrNotFound.
func (s *Store) VisitForCall(ctx context.Context, sid string) (string, error) {
	return s.lookup(ctx, s.keys.callIndex(sid))
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
	return s.rdb.ZAdd(ctx, s.keys.schedule(), redis.Z{Score: float64(at.UnixMilli()), Member: id}).Err()
}

// The invite index holds no secret: invites are indexed by the hash of
// their secret.

// IndexInvite remembers that the invite whose secret hashes to hash belongs
// to visit id, until expires.
func (s *Store) IndexInvite(ctx context.Context, hash, id string, expires time.Time) error {
	ttl := time.Until(expires)
	if ttl < time.Minute {
		ttl = time.Minute
	}
	if err := s.rdb.Set(ctx, s.keys.inviteIndex(hash), id, ttl).Err(); err != nil {
		return fmt.Errorf("store: index invite: %w", err)
	}
	return nil
}

// VisitForInvite returns the visit id of an invite hash, or visit.ErrNotFound.
func (s *Store) VisitForInvite(ctx context.Context, hash string) (string, error) {
	return s.lookup(ctx, s.keys.inviteIndex(hash))
}

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/visit"
)

// Create stores v unless a visit with its id exists. It reports the stored
// visit and whether it was created now; an existing visit is returned as is,
// for the caller to compare RequestHash. Pending timeline and jobs of v are
// committed with it.
func (s *Store) Create(ctx context.Context, v *visit.Visit) (*visit.Visit, bool, error) {
	defer s.lock(v.ID)()
	// Everything is encoded before anything is written: a visit that
	// cannot be stored leaves no index entry behind.
	pending := v.TakePending()
	data, err := encodeVisit(v, firstRevision())
	if err != nil {
		return nil, false, fmt.Errorf("store: create %s: %w", v.ID, err)
	}
	encoded, err := encodePending(pending)
	if err != nil {
		return nil, false, fmt.Errorf("store: create %s: %w", v.ID, err)
	}
	// Indexes first: a crash after this leaves entries pointing at nothing.
	// The schedule entry is added only if absent, so a create that finds
	// the visit existing does not move it in the schedule.
	pipe := s.rdb.Pipeline()
	added := pipe.ZAddNX(ctx, s.keys.schedule(), redis.Z{Score: float64(v.ScheduledAt.UnixMilli()), Member: v.ID})
	if len(pending.Jobs) > 0 {
		pipe.SAdd(ctx, s.keys.outboxPending(), v.ID)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.dropCreateIndexes(v)
		return nil, false, fmt.Errorf("store: create %s: index: %w", v.ID, err)
	}
	var existing *visit.Visit
	create := func(tx *redis.Tx) error {
		existing = nil
		raw, err := tx.Get(ctx, s.keys.visit(v.ID)).Bytes()
		if err == nil {
			existing, err = decode(raw)
			return err
		}
		if !errors.Is(err, redis.Nil) {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, s.keys.visit(v.ID), data, 0)
			encoded.write(ctx, p, s.keys, v.ID)
			return nil
		})
		return err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		// Another process creating the same id at once makes the
		// transaction fail; re-reading then finds its visit.
		if err = s.rdb.Watch(ctx, create, s.keys.visit(v.ID)); !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		s.dropCreateIndexes(v)
		return nil, false, fmt.Errorf("store: create %s: %w", v.ID, err)
	}
	if existing != nil {
		if added.Val() == 1 {
			// Another creator committed between our index write and our
			// transaction: the schedule must say its time, not ours.
			_ = s.rdb.ZAdd(ctx, s.keys.schedule(), redis.Z{Score: float64(existing.ScheduledAt.UnixMilli()), Member: v.ID}).Err()
		}
		return existing, false, nil
	}
	return v, true, nil
}

// dropCreateIndexes undoes the index entries of a create that failed, unless
// the visit exists after all (another creator's). It is best effort: it
// runs after a Redis error, and an entry it cannot remove points at nothing,
// which reads ignore.
func (s *Store) dropCreateIndexes(v *visit.Visit) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := s.rdb.Exists(ctx, s.keys.visit(v.ID)).Result(); err != nil || n > 0 {
		return
	}
	pipe := s.rdb.Pipeline()
	pipe.ZRem(ctx, s.keys.schedule(), v.ID)
	pipe.SRem(ctx, s.keys.outboxPending(), v.ID)
	_, _ = pipe.Exec(ctx)
}

package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/visit"
)

// ScheduledBefore returns up to n visit ids scheduled before t, oldest first,
// starting after the id-ordered position offset (for paging through the
// schedule index).
func (s *Store) ScheduledBefore(ctx context.Context, t time.Time, offset, n int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.keys.schedule(), &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(t.UnixMilli(), 10), Offset: offset, Count: n,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: scheduled before: %w", err)
	}
	return ids, nil
}

// Delete removes a visit with its timeline, outbox, seen tokens, guests and index
// entries, but only while keep(v) is false for the stored visit (checked in
// the same transaction, so a visit that changed meanwhile is kept). It
// reports whether it deleted; a missing visit is not an error.
func (s *Store) Delete(ctx context.Context, id string, keep func(v *visit.Visit) bool) (bool, error) {
	defer s.lock(id)()
	// A kept copy of a deleted visit would only be refused later; drop it.
	defer s.recent.put(id, nil)
	deleted := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, s.keys.visit(id)).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err := decode(raw)
		if err != nil {
			return err
		}
		if keep(v) {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, s.keys.visit(id), s.keys.timeline(id), s.keys.outbox(id), s.keys.seen(id), s.keys.guests(id))
			return nil
		})
		if err != nil {
			return err
		}
		deleted = true
		// Indexes after the visit: a crash leaves entries pointing at
		// nothing, which readers ignore.
		pipe := s.rdb.Pipeline()
		pipe.ZRem(ctx, s.keys.schedule(), id)
		pipe.ZRem(ctx, s.keys.reconcile(), id)
		pipe.SRem(ctx, s.keys.outboxPending(), id)
		// Written by versions before rooms were looked up by name.
		if s.rdb.Get(ctx, s.keys.roomIndex(v.Room.Name)).Val() == id {
			pipe.Del(ctx, s.keys.roomIndex(v.Room.Name))
		}
		if v.DialIn.PIN != "" && s.rdb.Get(ctx, s.keys.pinIndex(v.DialIn.PIN)).Val() == id {
			pipe.Del(ctx, s.keys.pinIndex(v.DialIn.PIN))
		}
		_, err = pipe.Exec(ctx)
		return err
	}, s.keys.visit(id))
	if errors.Is(err, redis.TxFailedErr) {
		return false, nil // changed meanwhile: keep it, the next purge looks again
	}
	if err != nil {
		return false, fmt.Errorf("store: delete %s: %w", id, err)
	}
	return deleted, nil
}

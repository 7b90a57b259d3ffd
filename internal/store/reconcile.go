package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The reconcile index lists the visits that have (or are getting) a room on
// Twilio, scored by when each is next due to be read back from Twilio's REST
// API. A visit enters it before its room is created, so no crash leaves a
// room nobody will ever look at, and leaves it once it is finished with no
// live phone leg.

// WatchVisit puts visit id in the reconcile index, due at due, unless it is
// there already (its earlier due time stands).
func (s *Store) WatchVisit(ctx context.Context, id string, due time.Time) error {
	err := s.rdb.ZAddNX(ctx, s.keys.reconcile(), redis.Z{Score: float64(due.UnixMilli()), Member: id}).Err()
	if err != nil {
		return fmt.Errorf("store: watch visit: %w", err)
	}
	return nil
}

// NextReconcile moves a watched visit's due time to due (a visit no longer
// watched stays out).
func (s *Store) NextReconcile(ctx context.Context, id string, due time.Time) error {
	err := s.rdb.ZAddXX(ctx, s.keys.reconcile(), redis.Z{Score: float64(due.UnixMilli()), Member: id}).Err()
	if err != nil {
		return fmt.Errorf("store: next reconcile: %w", err)
	}
	return nil
}

// UnwatchVisit takes visit id out of the reconcile index.
func (s *Store) UnwatchVisit(ctx context.Context, id string) error {
	if err := s.rdb.ZRem(ctx, s.keys.reconcile(), id).Err(); err != nil {
		return fmt.Errorf("store: unwatch visit: %w", err)
	}
	return nil
}

// VisitsToReconcile returns up to n watched visits due at or before now,
// the longest overdue first.
func (s *Store) VisitsToReconcile(ctx context.Context, now time.Time, n int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, s.keys.reconcile(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: n,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: visits to reconcile: %w", err)
	}
	return ids, nil
}

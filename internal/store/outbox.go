package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/visit"
)

// Outbox returns the entries of a visit's outbox.
func (s *Store) Outbox(ctx context.Context, id string) ([]visit.Job, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.outbox(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: outbox %s: %w", id, err)
	}
	jobs := make([]visit.Job, 0, len(m))
	for _, raw := range m {
		var j visit.Job
		if err := json.Unmarshal([]byte(raw), &j); err != nil {
			return nil, fmt.Errorf("store: outbox %s: %w", id, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// AckOutbox removes entries that Asynq has accepted.
func (s *Store) AckOutbox(ctx context.Context, id string, jobIDs ...string) error {
	if len(jobIDs) == 0 {
		return nil
	}
	if err := s.rdb.HDel(ctx, s.keys.outbox(id), jobIDs...).Err(); err != nil {
		return fmt.Errorf("store: ack outbox %s: %w", id, err)
	}
	return nil
}

// AckOutboxAndClear removes entries Asynq has accepted and, when that
// leaves the outbox empty, drops the visit from the pending set, as
// ClearPendingIfEmpty does: remove the mark, then check, and re-mark when an
// entry raced in. On one Redis this is one round trip (a pipeline keeps its
// order); on Cluster the mark and the outbox are on different nodes, so the
// check waits for the removal.
func (s *Store) AckOutboxAndClear(ctx context.Context, id string, jobIDs ...string) error {
	var left *redis.IntCmd
	remove := func(p redis.Pipeliner) {
		p.SRem(ctx, s.keys.outboxPending(), id)
	}
	check := func(p redis.Pipeliner) {
		if len(jobIDs) > 0 {
			p.HDel(ctx, s.keys.outbox(id), jobIDs...)
		}
		left = p.HLen(ctx, s.keys.outbox(id))
	}
	var err error
	if s.cluster {
		if _, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { remove(p); return nil }); err == nil {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { check(p); return nil })
		}
	} else {
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { remove(p); check(p); return nil })
	}
	if err != nil {
		return fmt.Errorf("store: ack outbox %s: %w", id, err)
	}
	if left.Val() > 0 {
		if err := s.rdb.SAdd(ctx, s.keys.outboxPending(), id).Err(); err != nil {
			return fmt.Errorf("store: ack outbox %s: %w", id, err)
		}
	}
	return nil
}

// PendingOutboxes returns up to n visit ids whose outbox may hold entries.
func (s *Store) PendingOutboxes(ctx context.Context, n int64) ([]string, error) {
	ids, err := s.rdb.SRandMemberN(ctx, s.keys.outboxPending(), n).Result()
	if err != nil {
		return nil, fmt.Errorf("store: pending outboxes: %w", err)
	}
	return ids, nil
}

// ScanOutboxes returns the ids of every visit with a non-empty outbox by
// scanning the keyspace (every master on Cluster). It is the sweeper's slow
// path for entries whose pending mark was lost in a crash.
func (s *Store) ScanOutboxes(ctx context.Context) ([]string, error) {
	var (
		mu  sync.Mutex
		ids []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, s.keys.outboxPattern(), 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			if open, close := strings.IndexByte(key, '{'), strings.LastIndexByte(key, '}'); open >= 0 && close > open {
				mu.Lock()
				ids = append(ids, key[open+1:close])
				mu.Unlock()
			}
		}
		return iter.Err()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("store: scan outboxes: %w", err)
	}
	return ids, nil
}

// ClearPendingIfEmpty drops the visit from the pending set when its outbox is
// empty; it re-adds it if an entry raced in. (The set and the outbox are in
// different hash slots, so this cannot be one script on Cluster; the order
// remove-then-check keeps a racing entry marked.)
func (s *Store) ClearPendingIfEmpty(ctx context.Context, id string) error {
	if err := s.rdb.SRem(ctx, s.keys.outboxPending(), id).Err(); err != nil {
		return fmt.Errorf("store: clear pending %s: %w", id, err)
	}
	n, err := s.rdb.HLen(ctx, s.keys.outbox(id)).Result()
	if err != nil {
		return fmt.Errorf("store: clear pending %s: %w", id, err)
	}
	if n > 0 {
		if err := s.rdb.SAdd(ctx, s.keys.outboxPending(), id).Err(); err != nil {
			return fmt.Errorf("store: clear pending %s: %w", id, err)
		}
	}
	return nil
}

// AckOutboxes is AckOutbox(ids[i], jobs[i]...) and, where all[i] (every
// entry of the visit went), the clearing of AckOutboxAndClear, for many
// visits: on one Redis in one round trip (two when an entry raced in), on
// Cluster in two, as the check must wait for the removal there.
func (s *Store) AckOutboxes(ctx context.Context, ids []string, jobs [][]string, all []bool) error {
	ids, jobs, all = mergeAcks(ids, jobs, all)
	lens := make([]*redis.IntCmd, len(ids))
	remove := func(p redis.Pipeliner, i int) {
		if len(jobs[i]) > 0 {
			p.HDel(ctx, s.keys.outbox(ids[i]), jobs[i]...)
		}
		if all[i] {
			p.SRem(ctx, s.keys.outboxPending(), ids[i])
		}
	}
	check := func(p redis.Pipeliner, i int) {
		if all[i] {
			lens[i] = p.HLen(ctx, s.keys.outbox(ids[i]))
		}
	}
	var err error
	if s.cluster {
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range ids {
				remove(p, i)
			}
			return nil
		})
		if err == nil {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range ids {
					check(p, i)
				}
				return nil
			})
		}
	} else {
		// A pipeline keeps its order: each visit's removal comes before
		// its check.
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range ids {
				remove(p, i)
				check(p, i)
			}
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("store: ack outboxes: %w", err)
	}
	var again []any
	for i, l := range lens {
		if l != nil && l.Val() > 0 {
			again = append(again, ids[i])
		}
	}
	if len(again) > 0 {
		if err := s.rdb.SAdd(ctx, s.keys.outboxPending(), again...).Err(); err != nil {
			return fmt.Errorf("store: ack outboxes: %w", err)
		}
	}
	return nil
}

// mergeAcks folds the acknowledgements of one visit into one: checked one
// after the other in a pipeline, the first would see the second's entries
// and mark the visit pending again after the second cleared it. The visit
// is cleared only when every change of it handed over all its entries.
func mergeAcks(ids []string, jobs [][]string, all []bool) ([]string, [][]string, []bool) {
	at := make(map[string]int, len(ids))
	var mids []string
	var mjobs [][]string
	var mall []bool
	for i, id := range ids {
		k, seen := at[id]
		if !seen {
			at[id] = len(mids)
			mids, mjobs, mall = append(mids, id), append(mjobs, jobs[i]), append(mall, all[i])
			continue
		}
		mjobs[k] = append(append([]string(nil), mjobs[k]...), jobs[i]...)
		mall[k] = mall[k] && all[i]
	}
	return mids, mjobs, mall
}

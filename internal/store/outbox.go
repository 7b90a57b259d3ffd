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

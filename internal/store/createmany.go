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

// createScript stores a new visit with its first timeline entries and
// outbox jobs unless a visit with its id exists, in one step on the
// visit's slot (a batch pipelines one per visit; WATCH/MULTI cannot be
// pipelined across visits).
//
//	KEYS[1] vf:visit:{id}
//	KEYS[2] vf:visit:{id}:timeline
//	KEYS[3] vf:visit:{id}:outbox
//	ARGV[1] the stored visit
//	ARGV[2] n, the number of timeline entries
//	ARGV[3 … 2+n] the timeline entries
//	ARGV[3+n …] outbox job ID, job JSON pairs
//
// Returns 1 when it stored the visit, else the stored visit.
var createScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
local n = tonumber(ARGV[2])
if n > 0 then redis.call('RPUSH', KEYS[2], unpack(ARGV, 3, 2 + n)) end
if #ARGV > 2 + n then redis.call('HSET', KEYS[3], unpack(ARGV, 3 + n)) end
return 1
`)

// CreateMany is Create for many visits in two pipelined round trips: the
// index entries of all of them, then one create script per visit. Each
// visit is created, found existing, or fails on its own: stored[i] is the
// stored visit (vs[i] when created[i], else the one that was there first),
// or errs[i] says why not.
func (s *Store) CreateMany(ctx context.Context, vs []*visit.Visit) (stored []*visit.Visit, created []bool, errs []error) {
	stored, created, errs = make([]*visit.Visit, len(vs)), make([]bool, len(vs)), make([]error, len(vs))
	type prepared struct {
		i    int
		args []any
	}
	var ready []prepared
	for i, v := range vs {
		pending := v.TakePending()
		data, err := encodeVisit(v, firstRevision())
		if err == nil {
			var enc encodedPending
			if enc, err = encodePending(pending); err == nil {
				args := make([]any, 0, 2+len(enc.timeline)+2*len(enc.jobs))
				args = append(args, data, len(enc.timeline))
				args = append(args, enc.timeline...)
				for id, j := range enc.jobs {
					args = append(args, id, j)
				}
				ready = append(ready, prepared{i, args})
				continue
			}
		}
		errs[i] = fmt.Errorf("store: create %s: %w", v.ID, err)
	}
	// Indexes first, as Create: a crash after this leaves entries pointing
	// at nothing, which reads ignore.
	pipe := s.rdb.Pipeline()
	added := make([]*redis.IntCmd, len(vs))
	for _, p := range ready {
		v := vs[p.i]
		added[p.i] = pipe.ZAddNX(ctx, s.keys.schedule(), redis.Z{Score: float64(v.ScheduledAt.UnixMilli()), Member: v.ID})
		if len(p.args) > 2+p.args[1].(int) {
			pipe.SAdd(ctx, s.keys.outboxPending(), v.ID)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		for _, p := range ready {
			s.dropCreateIndexes(vs[p.i])
			errs[p.i] = fmt.Errorf("store: create %s: index: %w", vs[p.i].ID, err)
		}
		return stored, created, errs
	}
	cmds := s.evalEach(ctx, createScript, len(ready), func(k int) ([]string, []any) {
		id := vs[ready[k].i].ID
		return []string{s.keys.visit(id), s.keys.timeline(id), s.keys.outbox(id)}, ready[k].args
	})
	var fixes []redis.Z
	for k, p := range ready {
		v := vs[p.i]
		res, err := cmds[k].Result()
		if err != nil {
			s.dropCreateIndexes(v)
			errs[p.i] = fmt.Errorf("store: create %s: %w", v.ID, err)
			continue
		}
		raw, isExisting := res.(string)
		if !isExisting {
			stored[p.i], created[p.i] = v, true
			continue
		}
		existing, err := decode([]byte(raw))
		if err != nil {
			errs[p.i] = fmt.Errorf("store: create %s: %w", v.ID, err)
			continue
		}
		if added[p.i].Val() == 1 {
			// Another creator committed between our index write and our
			// script: the schedule must say its time, not ours.
			fixes = append(fixes, redis.Z{Score: float64(existing.ScheduledAt.UnixMilli()), Member: v.ID})
		}
		stored[p.i] = existing
	}
	if len(fixes) > 0 {
		_ = s.rdb.ZAdd(ctx, s.keys.schedule(), fixes...).Err()
	}
	return stored, created, errs
}

// evalEach runs script n times in one pipeline, call k with the keys and
// arguments args(k), and returns each call's result. Scripts missing from
// the server's cache (a restart, a failover) are loaded and those calls
// run again.
func (s *Store) evalEach(ctx context.Context, script *redis.Script, n int, args func(k int) ([]string, []any)) []*redis.Cmd {
	cmds := make([]*redis.Cmd, n)
	run := func(which []int) {
		pipe := s.rdb.Pipeline()
		for _, k := range which {
			keys, argv := args(k)
			cmds[k] = pipe.EvalSha(ctx, script.Hash(), keys, argv...)
		}
		_, _ = pipe.Exec(ctx) // each command keeps its own error
	}
	all := make([]int, n)
	for k := range all {
		all[k] = k
	}
	run(all)
	var missing []int
	for k, c := range cmds {
		if err := c.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		if err := script.Load(ctx, s.rdb).Err(); err == nil {
			run(missing)
		}
	}
	return cmds
}

// GetEach reads the visits ids: out[i] is visit ids[i], nil when it does
// not exist.
func (s *Store) GetEach(ctx context.Context, ids []string) ([]*visit.Visit, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, s.keys.visit(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: get visits: %w", err)
	}
	out := make([]*visit.Visit, len(ids))
	for i, c := range cmds {
		raw, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: get %s: %w", ids[i], err)
		}
		if out[i], err = decode(raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReservePINs is ReservePIN for many PINs in one round trip: ok[i] tells
// whether visit ids[i] got pins[i], held for holds[i].
func (s *Store) ReservePINs(ctx context.Context, pins, ids []string, holds []time.Duration) ([]bool, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.BoolCmd, len(pins))
	for i, pin := range pins {
		cmds[i] = pipe.SetNX(ctx, s.keys.pinIndex(pin), ids[i], atLeastASecond(holds[i]))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("store: reserve pins: %w", err)
	}
	ok := make([]bool, len(pins))
	for i, c := range cmds {
		ok[i] = c.Val()
	}
	return ok, nil
}

// RememberPatientPhones is RememberPatientPhone for many hashes in one
// round trip.
func (s *Store) RememberPatientPhones(ctx context.Context, hashes []string, holds []time.Duration) error {
	cmds := s.evalEach(ctx, extendScript, len(hashes), func(k int) ([]string, []any) {
		return []string{s.keys.patientPhone(hashes[k])}, []any{atLeastASecond(holds[k]).Milliseconds()}
	})
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return fmt.Errorf("store: remember patient phones: %w", err)
		}
	}
	return nil
}

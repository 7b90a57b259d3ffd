// Package store keeps visits in Redis. It owns every key name and every
// transaction; the domain (internal/visit) owns the rules.
//
// Keys of one visit share the hash tag {id}, so one visit's update is a
// single WATCH/MULTI transaction even on Redis Cluster:
//
//	vf:visit:{id}            JSON of visit.Visit (facts included)
//	vf:visit:{id}:timeline   list of visit.Entry JSON, in arrival order
//	vf:visit:{id}:outbox     hash job ID → visit.Job JSON not yet handed to Asynq
//	vf:visit:{id}:seen       set of I-Twilio-Idempotency-Tokens already applied (expires)
//
// Indexes live outside the hash tag and are written before the visit, so a
// crash leaves at most an index entry pointing at nothing (ignored on read):
//
//	vf:idx:room:<name>       visit id for a room UniqueName
//	vf:idx:call:<sid>        visit id for a CallSid
//	vf:idx:pin:<pin>         visit id for a dial-in PIN (expires)
//	vf:idx:schedule          zset of visit ids by scheduled_at (ms)
//	vf:outbox:pending        set of visit ids whose outbox may hold entries
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/visit"
)

// Errors callers translate (404, 409 …).
var (
	ErrNotFound  = errors.New("store: visit not found")
	ErrDuplicate = errors.New("store: duplicate delivery")
	ErrConflict  = errors.New("store: too much contention, try again")
)

const (
	prefix      = "vf:"
	seenTTL     = 48 * time.Hour
	maxAttempts = 200
)

func visitKey(id string) string    { return prefix + "visit:{" + id + "}" }
func timelineKey(id string) string { return visitKey(id) + ":timeline" }
func outboxKey(id string) string   { return visitKey(id) + ":outbox" }
func seenKey(id string) string     { return visitKey(id) + ":seen" }
func roomIndexKey(name string) string {
	return prefix + "idx:room:" + name
}
func callIndexKey(sid string) string { return prefix + "idx:call:" + sid }
func pinIndexKey(pin string) string  { return prefix + "idx:pin:" + pin }

const (
	scheduleKey      = prefix + "idx:schedule"
	outboxPendingKey = prefix + "outbox:pending"
)

// Store is the Redis-backed visit repository.
type Store struct {
	rdb redis.UniversalClient
	// stripes serialise updates of one visit inside this process so
	// concurrent callbacks queue up instead of failing each other's WATCH;
	// across processes WATCH still guarantees atomicity.
	stripes [256]sync.Mutex
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Redis returns the client, for health checks.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

func (s *Store) lock(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	m.Lock()
	return m.Unlock
}

// Change is the outcome of one committed update.
type Change struct {
	Visit *visit.Visit
	// Jobs are the outbox entries the change wrote; hand them to Asynq and
	// then AckOutbox them.
	Jobs []visit.Job
	// Unchanged is true when the update changed nothing (a duplicate fact).
	Unchanged bool
}

// Create stores v unless a visit with its id exists. It reports the stored
// visit and whether it was created now; an existing visit is returned as is,
// for the caller to compare RequestHash. Pending timeline and jobs of v are
// committed with it.
func (s *Store) Create(ctx context.Context, v *visit.Visit) (*visit.Visit, bool, error) {
	defer s.lock(v.ID)()
	// Indexes first: a crash after this leaves entries pointing at nothing.
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, roomIndexKey(v.Room.Name), v.ID, 0)
	pipe.ZAdd(ctx, scheduleKey, redis.Z{Score: float64(v.ScheduledAt.UnixMilli()), Member: v.ID})
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, false, fmt.Errorf("store: create %s: index: %w", v.ID, err)
	}
	pending := v.TakePending()
	if len(pending.Jobs) > 0 {
		if err := s.rdb.SAdd(ctx, outboxPendingKey, v.ID).Err(); err != nil {
			return nil, false, fmt.Errorf("store: create %s: %w", v.ID, err)
		}
	}
	var existing *visit.Visit
	create := func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, visitKey(v.ID)).Bytes()
		if err == nil {
			existing, err = decode(raw)
			return err
		}
		if !errors.Is(err, redis.Nil) {
			return err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, visitKey(v.ID), data, 0)
			writePending(ctx, p, v.ID, pending)
			return nil
		})
		return err
	}
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		// Another process creating the same id at once makes the
		// transaction fail; re-reading then finds its visit.
		if err = s.rdb.Watch(ctx, create, visitKey(v.ID)); !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: create %s: %w", v.ID, err)
	}
	if existing != nil {
		return existing, false, nil
	}
	return v, true, nil
}

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

// ReleasePIN frees a PIN once its visit is over.
func (s *Store) ReleasePIN(ctx context.Context, pin, id string) error {
	if pin == "" {
		return nil
	}
	got, err := s.lookup(ctx, pinIndexKey(pin))
	if err != nil || got != id {
		return nil
	}
	return s.rdb.Del(ctx, pinIndexKey(pin)).Err()
}

// Get returns the visit with id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*visit.Visit, error) {
	raw, err := s.rdb.Get(ctx, visitKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	return decode(raw)
}

// GetMany returns the visits with ids that exist, in the order given.
func (s *Store) GetMany(ctx context.Context, ids []string) ([]*visit.Visit, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, visitKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: get many: %w", err)
	}
	out := make([]*visit.Visit, 0, len(ids))
	for _, c := range cmds {
		raw, err := c.Bytes()
		if err != nil {
			continue
		}
		v, err := decode(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Update applies fn to the visit atomically: it reads the visit, runs fn,
// and writes the visit with the timeline entries and jobs fn recorded, all
// in one transaction that retries when another writer got there first.
// token, when not empty, is an idempotency token (I-Twilio-Idempotency-Token):
// a token already applied returns ErrDuplicate without running fn. When fn
// changes nothing the write is skipped and Change.Unchanged is true. An
// error from fn aborts the update and is returned as is.
func (s *Store) Update(ctx context.Context, id, token string, fn func(v *visit.Visit) error) (Change, error) {
	defer s.lock(id)()
	var ch Change
	txf := func(tx *redis.Tx) error {
		ch = Change{}
		raw, err := tx.Get(ctx, visitKey(id)).Bytes()
		if errors.Is(err, redis.Nil) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if token != "" {
			seen, err := tx.SIsMember(ctx, seenKey(id), token).Result()
			if err != nil {
				return err
			}
			if seen {
				return ErrDuplicate
			}
		}
		v, err := decode(raw)
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return fnError{err}
		}
		pending := v.TakePending()
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		ch.Visit, ch.Jobs = v, pending.Jobs
		ch.Unchanged = bytes.Equal(data, raw) && len(pending.Timeline) == 0 && len(pending.Jobs) == 0
		if ch.Unchanged && token == "" {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if !ch.Unchanged {
				v.UpdatedAt = time.Now().UTC()
				p.Set(ctx, visitKey(id), mustJSON(v), 0)
				writePending(ctx, p, id, pending)
			}
			if token != "" {
				p.SAdd(ctx, seenKey(id), token)
				p.Expire(ctx, seenKey(id), seenTTL)
			}
			return nil
		})
		return err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		err := s.rdb.Watch(ctx, txf, visitKey(id), seenKey(id))
		if errors.Is(err, redis.TxFailedErr) {
			// Another process committed first: back off briefly and re-read.
			time.Sleep(time.Duration(rand.IntN(1+attempt)) * time.Millisecond)
			continue
		}
		var fe fnError
		switch {
		case errors.As(err, &fe):
			return Change{}, fe.err
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrDuplicate):
			return Change{}, err
		case err != nil:
			return Change{}, fmt.Errorf("store: update %s: %w", id, err)
		}
		if len(ch.Jobs) > 0 {
			// Marked after the commit (inside the transaction it would need a
			// second pooled connection per update, and on Cluster a
			// cross-slot key). Should this process die between the two, the
			// sweeper's scan of outbox keys still finds the entries.
			if err := s.rdb.SAdd(ctx, outboxPendingKey, id).Err(); err != nil {
				return ch, fmt.Errorf("store: update %s: mark outbox: %w", id, err)
			}
		}
		return ch, nil
	}
	return Change{}, fmt.Errorf("store: update %s: %w", id, ErrConflict)
}

// fnError carries an error of the caller's fn through go-redis untouched.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func writePending(ctx context.Context, p redis.Pipeliner, id string, pending visit.Pending) {
	for _, e := range pending.Timeline {
		p.RPush(ctx, timelineKey(id), mustJSON(e))
	}
	for _, j := range pending.Jobs {
		p.HSet(ctx, outboxKey(id), j.ID, mustJSON(j))
	}
}

// Timeline returns the visit's timeline entries in arrival order.
func (s *Store) Timeline(ctx context.Context, id string) ([]visit.Entry, error) {
	raws, err := s.rdb.LRange(ctx, timelineKey(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: timeline %s: %w", id, err)
	}
	out := make([]visit.Entry, 0, len(raws))
	for _, r := range raws {
		var e visit.Entry
		if err := json.Unmarshal([]byte(r), &e); err != nil {
			return nil, fmt.Errorf("store: timeline %s: %w", id, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// AppendTimeline adds entries to a visit's timeline without touching its facts.
func (s *Store) AppendTimeline(ctx context.Context, id string, entries ...visit.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	vals := make([]any, len(entries))
	for i, e := range entries {
		vals[i] = mustJSON(e)
	}
	if err := s.rdb.RPush(ctx, timelineKey(id), vals...).Err(); err != nil {
		return fmt.Errorf("store: timeline %s: %w", id, err)
	}
	return nil
}

// IndexCall remembers that call sid belongs to visit id.
func (s *Store) IndexCall(ctx context.Context, sid, id string) error {
	if err := s.rdb.Set(ctx, callIndexKey(sid), id, 30*24*time.Hour).Err(); err != nil {
		return fmt.Errorf("store: index call: %w", err)
	}
	return nil
}

// VisitForRoom returns the visit id for a room UniqueName, or ErrNotFound.
func (s *Store) VisitForRoom(ctx context.Context, name string) (string, error) {
	return s.lookup(ctx, roomIndexKey(name))
}

// VisitForCall returns the visit id for a CallSid, or ErrNotFound.
func (s *Store) VisitForCall(ctx context.Context, sid string) (string, error) {
	return s.lookup(ctx, callIndexKey(sid))
}

func (s *Store) lookup(ctx context.Context, key string) (string, error) {
	id, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
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

// Outbox returns the entries of a visit's outbox.
func (s *Store) Outbox(ctx context.Context, id string) ([]visit.Job, error) {
	m, err := s.rdb.HGetAll(ctx, outboxKey(id)).Result()
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
	if err := s.rdb.HDel(ctx, outboxKey(id), jobIDs...).Err(); err != nil {
		return fmt.Errorf("store: ack outbox %s: %w", id, err)
	}
	return nil
}

// PendingOutboxes returns up to n visit ids whose outbox may hold entries.
func (s *Store) PendingOutboxes(ctx context.Context, n int64) ([]string, error) {
	ids, err := s.rdb.SRandMemberN(ctx, outboxPendingKey, n).Result()
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
		iter := c.Scan(ctx, 0, prefix+"visit:{*}:outbox", 1000).Iterator()
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
// empty; it re-adds it if an entry raced in.
func (s *Store) ClearPendingIfEmpty(ctx context.Context, id string) error {
	if err := s.rdb.SRem(ctx, outboxPendingKey, id).Err(); err != nil {
		return err
	}
	n, err := s.rdb.HLen(ctx, outboxKey(id)).Result()
	if err != nil {
		return err
	}
	if n > 0 {
		return s.rdb.SAdd(ctx, outboxPendingKey, id).Err()
	}
	return nil
}

// ListQuery selects visits by schedule time, newest first.
type ListQuery struct {
	From, To time.Time // zero: unbounded
	State    visit.State
	Cursor   string // opaque, from a previous page
	Limit    int
}

// List returns a page of visits and the cursor of the next page ("" at the end).
func (s *Store) List(ctx context.Context, q ListQuery) ([]*visit.Visit, string, error) {
	max := "+inf"
	if !q.To.IsZero() {
		max = fmt.Sprint(q.To.UnixMilli())
	}
	min := "-inf"
	if !q.From.IsZero() {
		min = fmt.Sprint(q.From.UnixMilli())
	}
	var offset int64
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		max, offset = c.Max, c.Offset
	}
	var out []*visit.Visit
	batch := int64(q.Limit) * 2
	if batch < 100 {
		batch = 100
	}
	for len(out) < q.Limit {
		zs, err := s.rdb.ZRevRangeByScoreWithScores(ctx, scheduleKey, &redis.ZRangeBy{
			Max: max, Min: min, Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("store: list: %w", err)
		}
		if len(zs) == 0 {
			return out, "", nil
		}
		ids := make([]string, len(zs))
		for i, z := range zs {
			ids[i] = z.Member.(string)
		}
		visits, err := s.GetMany(ctx, ids)
		if err != nil {
			return nil, "", err
		}
		byID := make(map[string]*visit.Visit, len(visits))
		for _, v := range visits {
			byID[v.ID] = v
		}
		for i, z := range zs {
			v := byID[ids[i]]
			offset++
			if v == nil || (q.State != "" && v.State() != q.State) {
				continue
			}
			out = append(out, v)
			if len(out) == q.Limit {
				// The next page continues after this member: same max score,
				// skipping what we consumed at that score.
				next := cursor{Max: fmt.Sprint(int64(z.Score)), Offset: countAtScore(zs[:i+1], z.Score)}
				if q.Cursor != "" {
					if c, _ := decodeCursor(q.Cursor); c.Max == next.Max {
						next.Offset += c.Offset
					}
				}
				return out, next.encode(), nil
			}
		}
		if int64(len(zs)) < batch {
			return out, "", nil
		}
	}
	return out, "", nil
}

func countAtScore(zs []redis.Z, score float64) int64 {
	var n int64
	for _, z := range zs {
		if z.Score == score {
			n++
		}
	}
	return n
}

// Purge deletes a finished visit and its index entries.
func (s *Store) Purge(ctx context.Context, v *visit.Visit) error {
	pipe := s.rdb.Pipeline()
	pipe.ZRem(ctx, scheduleKey, v.ID)
	pipe.Del(ctx, roomIndexKey(v.Room.Name))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store: purge %s: %w", v.ID, err)
	}
	if err := s.rdb.Del(ctx, visitKey(v.ID), timelineKey(v.ID), outboxKey(v.ID), seenKey(v.ID)).Err(); err != nil {
		return fmt.Errorf("store: purge %s: %w", v.ID, err)
	}
	return nil
}

// ScheduledBetween returns ids of visits scheduled in [from, to], oldest first.
func (s *Store) ScheduledBetween(ctx context.Context, from, to time.Time, n int64) ([]string, error) {
	ids, err := s.rdb.ZRangeByScore(ctx, scheduleKey, &redis.ZRangeBy{
		Min: fmt.Sprint(from.UnixMilli()), Max: fmt.Sprint(to.UnixMilli()), Count: n,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: scheduled between: %w", err)
	}
	return ids, nil
}

func decode(raw []byte) (*visit.Visit, error) {
	var v visit.Visit
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("store: decode visit: %w", err)
	}
	return &v, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: marshal %T: %v", v, err))
	}
	return b
}

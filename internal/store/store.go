// Package store keeps visits in Redis. It owns every key name and every
// transaction; the domain (internal/visit) owns the rules and the shared
// vocabulary (visit.visit.ErrNotFound, visit.ListQuery, visit.Change).
//
// Keys of one visit share the hash tag {id}, so one visit's update is a
// single atomic step (a Lua script, commit.go) even on Redis Cluster. Every key the store
// writes (keys.go builds them; Asynq's own asynq:{queue}:… keys are Asynq's)
// is listed here as it is with an empty redis.namespace; a namespace ns
// prefixes each with "ns:" (ns:vf:visit:{id}, …), and the Asynq queues are
// named ns:critical, … (workflows.QueueName):
//
//	vf:visit:{id}              "<revision>\n" + JSON of visit.Visit (facts, legs, invites, done marks; encoding.go)
//	vf:visit:{id}:timeline     list of visit.Entry JSON, in arrival order
//	vf:visit:{id}:outbox       hash job ID → visit.Job JSON not yet handed to Asynq
//	vf:visit:{id}:seen         set of I-Twilio-Idempotency-Tokens already applied (expires after 48 h)
//	vf:visit:{id}:guests       hash ParticipantSid → JSON of a guest's visit.Participant (encoding.go)
//
// Indexes live outside the hash tag and are written before the visit, so a
// crash leaves at most an index entry pointing at nothing (ignored on read):
//
//	vf:idx:room:<name>         visit id for a room UniqueName, written by earlier versions (a room's
//	                           visit is now read from its name, visit-<id>); purge removes it
//	vf:idx:call:<sid>          visit id for a CallSid (expires after 30 days)
//	vf:idx:pin:<pin>           visit id for a dial-in PIN, held until the end of the
//	                           visit's dial-in window (SET NX: one key, so one slot, so
//	                           atomic on Cluster too; a reschedule moves the expiry)
//	vf:idx:invite:<sha256>     visit id for an invite secret's hash (expires after the window + 7 days)
//	vf:idx:schedule            zset of visit ids by scheduled_at (ms)
//	vf:idx:reconcile           zset of visit ids with a room, by when Twilio's REST API is next read for them (ms)
//	vf:outbox:pending          set of visit ids whose outbox may hold entries
//
// Records that belong to a phone number rather than a visit, keyed by a
// keyed hash the caller computes, so no key or value holds the number:
//
//	vf:optout:<hmac>           an opted-out number; value = when (RFC 3339)
//	vf:rl:dialin:<hmac>        failed dial-in PIN entries of one caller (expires)
//	vf:idx:reply:<hmac>        visit id of the latest patient SMS to a number, which a reply
//	                           answers (expires with the visit's window)
//	vf:idx:patient-phone:<hmac> a patient phone of a visit whose dial-in window has not ended
//	                           (expires with the latest such window)
//
// Counters of every caller at once (no PHI at all):
//
//	vf:rl:dialin-budget:<unix> failed dial-in PINs across all callers in the budget
//	                           window starting at <unix> seconds (expires after it)
//
// The audit trail (internal/audit; no PHI: actors, route templates, ids,
// statuses), kept for audit.retention and apart from the visit's keys, so
// purging a visit keeps who read it:
//
//	vf:audit:<YYYY-MM-DD>      stream of audit.Record JSON (field r) answered that UTC day
//	vf:audit:days              zset of the days above by their start (Unix s), for the trim
//	vf:audit:refs:{id}         the records naming visit id: lines "<day> <stream id>" into the
//	                           day streams (expires after retention)
//	vf:audit:visit:{id}        the same as a stream of copies, on trails begun before the refs
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/visit"
)

// ErrConflict: an update lost its transaction maxAttempts times in a row
// to other writers of the same visit (API: 503; the caller may retry).
var ErrConflict = errors.New("store: too much contention, try again")

const (
	seenTTL     = 48 * time.Hour
	maxAttempts = 200
	// defaultRecentVisits is half the snapshots Update keeps at most
	// (recentVisits): 8,192 visits, about 12 MB at 1.5 KB a record.
	defaultRecentVisits = 4096
)

// Store is the Redis-backed visit repository.
type Store struct {
	rdb   redis.UniversalClient
	clock clock.Clock
	keys  keyspace
	// cluster: the store talks to a Redis Cluster, where a pipeline's keys
	// of different slots go to different nodes in no fixed order.
	cluster bool
	// stripes serialise updates of one visit inside this process so
	// concurrent callbacks queue up instead of failing each other's
	// revision check; across processes the check still guarantees atomicity.
	stripes [256]sync.Mutex
	// recent holds the snapshots Update starts from (recent.go).
	recent *recentVisits
}

// New returns a Store on rdb. Options: WithClock.
func New(rdb redis.UniversalClient, opts ...Option) *Store {
	_, cluster := rdb.(*redis.ClusterClient)
	s := &Store{rdb: rdb, clock: clock.Real{}, keys: newKeyspace(""), cluster: cluster,
		recent: newRecentVisits(defaultRecentVisits)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Option configures a Store.
type Option func(*Store)

// WithNamespace prefixes every key with namespace (redis.namespace), so
// stores of different namespaces on one Redis never see each other's data.
func WithNamespace(namespace string) Option {
	return func(s *Store) { s.keys = newKeyspace(namespace) }
}

// WithClock makes the store stamp visits' updated_at from c (tests pass the
// same fake clock as the engine's).
func WithClock(c clock.Clock) Option { return func(s *Store) { s.clock = c } }

func (s *Store) lock(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	m.Lock()
	return m.Unlock
}

// Get returns the visit with id, or visit.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*visit.Visit, error) {
	var get *redis.StringCmd
	var guests *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.keys.visit(id))
		guests = p.HGetAll(ctx, s.keys.guests(id))
		return nil
	})
	if errors.Is(get.Err(), redis.Nil) {
		return nil, visit.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	raw, _ := get.Bytes()
	return decodeWithGuests(raw, guests.Val())
}

// Update applies fn to the visit atomically: it reads the visit (or starts
// from the copy this process kept of it, recent.go), runs fn, and writes the
// visit with the timeline entries and jobs fn recorded, all in one step
// (commitChange) that refuses the write when another writer committed since;
// fn then runs again on the visit as it now is. token, when not empty, is an
// idempotency token (I-Twilio-Idempotency-Token): a token already applied
// returns visit.ErrDuplicate (fn may have run). When fn changes nothing the
// write is skipped and Change.Unchanged is true. An error from fn aborts the
// update and is returned as is, once fn returned it for the visit as Redis
// has it. fn must not keep anything from an earlier run.
func (s *Store) Update(ctx context.Context, id, token string, fn func(v *visit.Visit) error) (visit.Change, error) {
	return s.update(ctx, id, token, everyone, fn)
}

// UpdateParticipant is Update for a change about one participant (a Video
// participant callback): fn sees the visit with its provider, patient and
// phone legs but, of its guests, only participant sid (when it is one), and
// the other guests are neither read nor written. Guests never count for
// the state (contract §5), so fn decides exactly as with the whole visit;
// what it costs no longer grows with the guests a visit had.
func (s *Store) UpdateParticipant(ctx context.Context, id, token, sid string, fn func(v *visit.Visit) error) (visit.Change, error) {
	if sid == "" {
		return s.update(ctx, id, token, everyone, fn)
	}
	return s.update(ctx, id, token, sid, fn)
}

// everyone is update's scope for a change that reads all of the visit's guests.
const everyone = ""

func (s *Store) update(ctx context.Context, id, token, guest string, fn func(v *visit.Visit) error) (visit.Change, error) {
	defer s.lock(id)()
	eval := false // EVAL instead of EVALSHA once Redis said NOSCRIPT
	sn, fresh := s.recent.get(id), false
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var loaded map[string]string
		known := false
		if sn != nil {
			loaded, known = sn.guestsFor(guest)
		}
		if !known {
			var err error
			if sn, err = s.read(ctx, id, token, guest); err != nil {
				s.recent.put(id, nil)
				if errors.Is(err, visit.ErrNotFound) || errors.Is(err, visit.ErrDuplicate) {
					return visit.Change{}, err
				}
				return visit.Change{}, fmt.Errorf("store: update %s: %w", id, err)
			}
			loaded, _ = sn.guestsFor(guest)
			fresh = true
		}
		ch, res, err := s.tryUpdate(ctx, id, token, guest, sn, fresh, loaded, fn, eval)
		var fe fnError
		var me markError
		if err != nil && !errors.As(err, &me) && !errors.As(err, &fe) {
			// The commit may or may not have landed: start again from Redis.
			s.recent.put(id, nil)
		} else {
			s.recent.put(id, res.next)
		}
		switch {
		case errors.As(err, &fe) && !fresh:
			// fn refused the visit as this process kept it, which may be
			// stale: only the visit as Redis has it may refuse.
			sn = nil
			continue
		case errors.As(err, &fe):
			return visit.Change{}, fe.err
		case errors.As(err, &me):
			// Committed, but the sweeper's pending mark is missing: the
			// caller learns of it; the full sweep still finds the entries.
			return ch, fmt.Errorf("store: update %s: mark outbox: %w", id, me.err)
		case errors.Is(err, visit.ErrNotFound):
			return visit.Change{}, err
		case redis.HasErrorPrefix(err, "NOSCRIPT") && !eval:
			eval = true
			continue
		case err != nil:
			return visit.Change{}, fmt.Errorf("store: update %s: %w", id, err)
		case res.outcome == commitDuplicate:
			return visit.Change{}, visit.ErrDuplicate
		case res.outcome == commitStale:
			// Another writer committed first; the refusal carried the visit
			// as it is now. Back off briefly when that keeps happening.
			sn, fresh = res.next, true
			time.Sleep(time.Duration(rand.IntN(1+attempt)) * time.Millisecond)
			continue
		}
		return ch, nil
	}
	return visit.Change{}, fmt.Errorf("store: update %s: %w", id, ErrConflict)
}

// read reads the visit with the guests a change of scope guest needs and,
// in the same round trip, checks the idempotency token.
func (s *Store) read(ctx context.Context, id, token, guest string) (*snapshot, error) {
	var get *redis.StringCmd
	var seen *redis.BoolCmd
	var all *redis.MapStringStringCmd
	var one *redis.SliceCmd
	var count *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.keys.visit(id))
		if token != "" {
			seen = p.SIsMember(ctx, s.keys.seen(id), token)
		}
		if guest == everyone {
			all = p.HGetAll(ctx, s.keys.guests(id))
		} else {
			one = p.HMGet(ctx, s.keys.guests(id), guest)
			count = p.HLen(ctx, s.keys.guests(id))
		}
		return nil
	})
	if errors.Is(get.Err(), redis.Nil) {
		return nil, visit.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if seen != nil && seen.Val() {
		return nil, visit.ErrDuplicate
	}
	raw, _ := get.Bytes()
	rev, _, err := splitVisit(raw)
	if err != nil {
		return nil, err
	}
	sn := &snapshot{rev: rev, raw: raw}
	if all != nil {
		sn.guests, sn.complete = all.Val(), true
		return sn, nil
	}
	p, _ := one.Val()[0].(string)
	sn.guests = map[string]string{guest: p}
	sn.complete = count.Val() == 0 || (count.Val() == 1 && p != "")
	return sn, nil
}

// attempt is what one tryUpdate left: the commit's outcome and the visit's
// snapshot after it (as committed, or, when stale, as Redis now has it;
// nil when unknown).
type attempt struct {
	outcome int64
	next    *snapshot
}

// tryUpdate is one decide and commit of Update, from the visit as sn has it
// with the guests loaded (all of them for guest == everyone, else only
// that one); fresh: sn was read from Redis for this update, not kept from
// an earlier one.
func (s *Store) tryUpdate(ctx context.Context, id, token, guest string, sn *snapshot, fresh bool, loaded map[string]string, fn func(v *visit.Visit) error, eval bool) (visit.Change, attempt, error) {
	v, err := decode(sn.raw)
	if err != nil {
		return visit.Change{}, attempt{}, err
	}
	rev := sn.rev
	if err := mergeGuests(v, loaded); err != nil {
		return visit.Change{}, attempt{}, err
	}
	if err := fn(v); err != nil {
		return visit.Change{}, attempt{next: sn}, fnError{err}
	}
	pending := v.TakePending()
	ch := visit.Change{Visit: v, Jobs: pending.Jobs}
	guests, err := encodeGuests(v)
	if err != nil {
		return visit.Change{}, attempt{}, err
	}
	for sid, p := range guests {
		if loaded[sid] == string(p) {
			delete(guests, sid) // as read: nothing to write
		}
	}
	// A change that records an entry or a job, or changes a guest, changed
	// the visit; only one that does none of these needs the record encoded
	// to find out.
	if len(pending.Timeline) == 0 && len(pending.Jobs) == 0 && len(guests) == 0 {
		same, err := encodeRecord(v, rev)
		if err != nil {
			return visit.Change{}, attempt{}, err
		}
		ch.Unchanged = bytes.Equal(same, sn.raw)
	}
	// Nothing to write and no token to record: done, when sn is the visit
	// as Redis has it. A kept snapshot may be stale, and against the
	// current visit the same fn may well change something, so the script
	// still checks its revision (writing nothing when it is current).
	if ch.Unchanged && token == "" && fresh {
		return ch, attempt{outcome: commitDone, next: sn}, nil
	}
	var value []byte
	var encoded encodedPending
	if !ch.Unchanged {
		// Every change rewrites the record (updated_at moves), so its
		// revision moves too: a writer that read before cannot commit.
		v.UpdatedAt = s.clock.Now().UTC()
		if value, err = encodeRecord(v, rev+1); err != nil {
			return visit.Change{}, attempt{}, err
		}
		if encoded, err = encodePending(pending); err != nil {
			return visit.Change{}, attempt{}, err
		}
	}
	keys := []string{s.keys.visit(id), s.keys.timeline(id), s.keys.outbox(id), s.keys.seen(id), s.keys.guests(id)}
	args := commitArgs(rev, value, token, guest, encoded, guests)
	var res attempt
	if len(ch.Jobs) == 0 {
		reply, err := runScript(ctx, s.rdb, commitChange, eval, keys, args...).Result()
		if err != nil {
			return ch, attempt{}, err
		}
		if res, err = committed(reply, sn, rev+1, value, guests, guest); err != nil {
			return ch, attempt{}, err
		}
		return ch, res, nil
	}
	// A change with jobs also marks the visit's outbox pending, for the
	// sweeper should this process die before handing the jobs to Asynq.
	// The mark follows the commit (remove-then-check in ClearPendingIfEmpty
	// relies on it), in the same round trip; on Cluster the two keys are on
	// different nodes, so it waits for the commit instead. A commit that
	// turns out stale leaves a mark on an empty outbox, which the sweeper
	// clears.
	pipe := s.rdb.Pipeline()
	commit := runScript(ctx, pipe, commitChange, eval, keys, args...)
	if !s.cluster {
		pipe.SAdd(ctx, s.keys.outboxPending(), id)
	}
	_, err = pipe.Exec(ctx)
	reply, cerr := commit.Result()
	if cerr != nil {
		return ch, attempt{}, cerr
	}
	if res, cerr = committed(reply, sn, rev+1, value, guests, guest); cerr != nil {
		return ch, attempt{}, cerr
	}
	switch {
	case err != nil && res.outcome == commitDone:
		return ch, res, markError{err}
	case s.cluster && res.outcome == commitDone:
		if err := s.rdb.SAdd(ctx, s.keys.outboxPending(), id).Err(); err != nil {
			return ch, res, markError{err}
		}
	}
	return ch, res, nil
}

// committed reads commitChange's reply to a change made from sn that wrote
// value (the record at rev; nil: not rewritten) and guests.
func committed(reply any, sn *snapshot, rev int64, value []byte, guests map[string][]byte, scope string) (attempt, error) {
	switch r := reply.(type) {
	case int64:
		if r == commitDuplicate {
			return attempt{outcome: commitDuplicate, next: sn}, nil
		}
		return attempt{outcome: commitDone, next: sn.after(rev, value, guests)}, nil
	case []any:
		now, err := staleSnapshot(r, scope)
		if err != nil {
			return attempt{}, err
		}
		if now == nil {
			return attempt{}, visit.ErrNotFound
		}
		return attempt{outcome: commitStale, next: now}, nil
	}
	return attempt{}, fmt.Errorf("commit: unexpected reply %T", reply)
}

// staleSnapshot reads the visit out of commitChange's refusal {0, stored
// visit, guest count, guests…}; nil when the visit is gone.
func staleSnapshot(r []any, scope string) (*snapshot, error) {
	if len(r) < 3 {
		return nil, nil
	}
	raw, ok := r[1].(string)
	count, ok2 := r[2].(int64)
	if !ok || !ok2 {
		return nil, fmt.Errorf("commit: malformed refusal")
	}
	rev, _, err := splitVisit([]byte(raw))
	if err != nil {
		return nil, err
	}
	sn := &snapshot{rev: rev, raw: []byte(raw), guests: map[string]string{}}
	rest := r[3:]
	if scope == everyone {
		for i := 0; i+1 < len(rest); i += 2 {
			sid, _ := rest[i].(string)
			p, _ := rest[i+1].(string)
			sn.guests[sid] = p
		}
		sn.complete = true
		return sn, nil
	}
	p := ""
	if len(rest) > 0 {
		p, _ = rest[0].(string)
	}
	sn.guests[scope] = p
	sn.complete = count == 0 || (count == 1 && p != "")
	return sn, nil
}

// markError is a failure to mark the outbox pending after a commit.
type markError struct{ err error }

func (e markError) Error() string { return e.err.Error() }

// fnError carries an error of the caller's fn through go-redis untouched.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// encodedPending is a change's timeline entries and outbox jobs as JSON,
// encoded before the transaction so that a value that cannot be encoded is
// an error of the change, not a panic half-way through writing it.
type encodedPending struct {
	timeline []any
	jobs     map[string]any
}

func encodePending(pending visit.Pending) (encodedPending, error) {
	var enc encodedPending
	for _, e := range pending.Timeline {
		b, err := json.Marshal(e)
		if err != nil {
			return encodedPending{}, fmt.Errorf("encode timeline entry %s: %w", e.Type, err)
		}
		enc.timeline = append(enc.timeline, b)
	}
	for _, j := range pending.Jobs {
		b, err := json.Marshal(j)
		if err != nil {
			return encodedPending{}, fmt.Errorf("encode job %s: %w", j.ID, err)
		}
		if enc.jobs == nil {
			enc.jobs = map[string]any{}
		}
		enc.jobs[j.ID] = b
	}
	return enc, nil
}

func (enc encodedPending) write(ctx context.Context, p redis.Pipeliner, keys keyspace, id string) {
	if len(enc.timeline) > 0 {
		p.RPush(ctx, keys.timeline(id), enc.timeline...)
	}
	if len(enc.jobs) > 0 {
		p.HSet(ctx, keys.outbox(id), enc.jobs)
	}
}

// GetWithTimeline returns the visit and its timeline as of one moment: both
// are read in one MULTI on the visit's slot, so a change committed between
// two separate reads cannot show a timeline entry without its fact.
func (s *Store) GetWithTimeline(ctx context.Context, id string) (*visit.Visit, []visit.Entry, error) {
	var get *redis.StringCmd
	var lrange *redis.StringSliceCmd
	var guests *redis.MapStringStringCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.keys.visit(id))
		lrange = p.LRange(ctx, s.keys.timeline(id), 0, -1)
		guests = p.HGetAll(ctx, s.keys.guests(id))
		return nil
	})
	if errors.Is(get.Err(), redis.Nil) {
		return nil, nil, visit.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	raw, _ := get.Bytes()
	v, err := decodeWithGuests(raw, guests.Val())
	if err != nil {
		return nil, nil, err
	}
	tl, err := decodeTimeline(id, lrange.Val())
	return v, tl, err
}

// Timeline returns the visit's timeline entries in arrival order.
func (s *Store) Timeline(ctx context.Context, id string) ([]visit.Entry, error) {
	raws, err := s.rdb.LRange(ctx, s.keys.timeline(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: timeline %s: %w", id, err)
	}
	return decodeTimeline(id, raws)
}

func decodeTimeline(id string, raws []string) ([]visit.Entry, error) {
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

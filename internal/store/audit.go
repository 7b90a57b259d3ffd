package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/visit"
)

const (
	auditDayLayout = "2006-01-02"
	auditField     = "r" // the stream entry's one field: the record's JSON
	auditBatch     = 500
	// auditSkew is how far the Redis server's clock (stream ids) may be
	// from the records' At when a query turns a time into a stream id.
	auditSkew = time.Minute
)

// A visit's audit trail is vf:audit:refs:{id}, a string with one line per
// record naming the visit, "<YYYY-MM-DD> <stream id>\n": where the record is
// in its day's stream, where it is stored once. A record of a batch of
// 10,000 visits is then one record plus 27 bytes per visit, where a copy
// per visit in a stream of its own cost 4.7 KB (Redis preallocates a
// stream's node; docs/benchmarks.md). Trails begun before are a stream of
// per-visit copies (vf:audit:visit:{id}), read first: its records are all
// older.
const auditRefLen = len(auditDayLayout) + 1 // "<day> "

// AppendAudit appends r to the stream of r.At's UTC day and a reference to
// it to the trail of each of r.Visits, which expires retention after its
// last record and drops references to days past retention (whole days are
// trimmed by TrimAudit). The writes are pipelined, not atomic: a failure
// may leave a record in the day's stream only, and is returned.
func (s *Store) AppendAudit(ctx context.Context, r audit.Record, retention time.Duration) error {
	r.ID = ""
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	day := r.At.UTC().Truncate(24 * time.Hour)
	dayName := day.Format(auditDayLayout)
	pipe := s.rdb.Pipeline()
	add := pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.auditDay(dayName), Values: []string{auditField, string(data)}})
	pipe.ZAdd(ctx, s.keys.auditDays(), redis.Z{Score: float64(day.Unix()), Member: dayName})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	if len(r.Visits) == 0 {
		return nil
	}
	line := dayName + " " + add.Val() + "\n"
	keep := r.At.Add(-retention).UTC().Format(auditDayLayout) // the first day inside retention
	pipe = s.rdb.Pipeline()
	heads := make([]*redis.StringCmd, len(r.Visits))
	for i, id := range r.Visits {
		key := s.keys.auditRefs(id)
		pipe.Append(ctx, key, line)
		heads[i] = pipe.GetRange(ctx, key, 0, int64(len(auditDayLayout))-1)
		pipe.PExpire(ctx, key, retention)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	for i, h := range heads {
		if h.Val() < keep { // rare: the trail's first record is past retention
			if err := trimAuditRefs.Run(ctx, s.rdb, []string{s.keys.auditRefs(r.Visits[i])}, keep).Err(); err != nil {
				return fmt.Errorf("store: trim audit of %s: %w", r.Visits[i], err)
			}
		}
	}
	return nil
}

// trimAuditRefs drops the lines of a visit's audit trail whose day is
// before the first day to keep (lines are in the order appended, so days
// ascend), keeping the trail's expiry.
//
//	KEYS[1] vf:audit:refs:{id}
//	ARGV[1] the first day to keep, YYYY-MM-DD
//
// Returns how many bytes it dropped.
var trimAuditRefs = redis.NewScript(`
local all = redis.call('GET', KEYS[1])
if not all then return 0 end
local pos = 1
while pos <= #all and string.sub(all, pos, pos + 9) < ARGV[1] do
  local nl = string.find(all, '\n', pos, true)
  if not nl then break end
  pos = nl + 1
end
if pos == 1 then return 0 end
if pos > #all then
  redis.call('DEL', KEYS[1])
  return pos - 1
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[1], string.sub(all, pos), 'PX', ttl)
else
  redis.call('SET', KEYS[1], string.sub(all, pos))
end
return pos - 1
`)

// auditRef is one line of a visit's trail: the record id in a day's stream.
type auditRef struct{ day, id string }

// auditRefsOf reads visit id's trail of references, oldest first.
func (s *Store) auditRefsOf(ctx context.Context, id string) ([]auditRef, error) {
	raw, err := s.rdb.Get(ctx, s.keys.auditRefs(id)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: read audit of %s: %w", id, err)
	}
	var refs []auditRef
	for _, line := range strings.Split(raw, "\n") {
		if len(line) > auditRefLen && validStreamID(line[auditRefLen:]) {
			refs = append(refs, auditRef{day: line[:auditRefLen-1], id: line[auditRefLen:]})
		}
	}
	return refs, nil
}

// dayRecord is a record and the day whose stream holds it.
type dayRecord struct {
	rec audit.Record
	day string
}

// recordsAt reads the records refs point at, in their order, as they
// concern visit id; a reference into a day already trimmed reads nothing.
func (s *Store) recordsAt(ctx context.Context, id string, refs []auditRef) ([]dayRecord, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(refs))
	for i, ref := range refs {
		cmds[i] = pipe.XRange(ctx, s.keys.auditDay(ref.day), ref.id, ref.id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: read audit of %s: %w", id, err)
	}
	out := make([]dayRecord, 0, len(refs))
	for i, c := range cmds {
		for _, m := range c.Val() {
			raw, _ := m.Values[auditField].(string)
			var r audit.Record
			if err := json.Unmarshal([]byte(raw), &r); err != nil {
				return nil, fmt.Errorf("store: read audit %s: %w", m.ID, err)
			}
			r.ID, r.Visits = m.ID, []string{id}
			out = append(out, dayRecord{rec: r, day: refs[i].day})
		}
	}
	return out, nil
}

// AuditRecords returns a page of records matching q, oldest first, and
// the cursor of the next page ("" at the end). A zero q.To is now; a zero
// q.From without q.Visit reads every day. A cursor of another query is
// visit.ErrBadCursor.
func (s *Store) AuditRecords(ctx context.Context, q audit.Query, now time.Time) ([]audit.Record, string, error) {
	if q.To.IsZero() {
		q.To = now
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Visit != "" {
		return s.visitAudit(ctx, q)
	}

	first := q.From.UTC().Truncate(24 * time.Hour)
	start := "-"
	if q.Cursor != "" {
		d, id, ok := strings.Cut(q.Cursor, "|")
		t, err := time.Parse(auditDayLayout, d)
		if !ok || err != nil || !validStreamID(id) {
			return nil, "", visit.ErrBadCursor
		}
		first, start = t, "("+id
	}
	// Only days that have records: the index, not every date in between.
	days, err := s.rdb.ZRangeByScore(ctx, s.keys.auditDays(), &redis.ZRangeBy{
		Min: strconv.FormatInt(first.Unix(), 10), Max: strconv.FormatInt(q.To.UTC().Unix(), 10),
	}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("store: read audit days: %w", err)
	}
	var out []audit.Record
	for i, day := range days {
		if i > 0 || day != first.Format(auditDayLayout) {
			start = "-"
		}
		page, last, done, err := s.readAudit(ctx, s.keys.auditDay(day), start, q, q.Limit-len(out))
		if err != nil {
			return nil, "", err
		}
		out = append(out, page...)
		if !done {
			return out, day + "|" + last, nil
		}
	}
	return out, "", nil
}

// visitAudit is AuditRecords for one visit: its old stream (if any), then
// the records its references point at. A page ending in the old stream has
// the last record's stream id as its cursor; one ending among the
// references "<day>|<id>" (ids of different streams may be equal).
func (s *Store) visitAudit(ctx context.Context, q audit.Query) ([]audit.Record, string, error) {
	refs, err := s.auditRefsOf(ctx, q.Visit)
	if err != nil {
		return nil, "", err
	}
	var out []audit.Record
	first, inRefs := 0, false
	if q.Cursor != "" {
		day, id, ok := strings.Cut(q.Cursor, "|")
		if !ok {
			day, id = "", q.Cursor
		}
		if !validStreamID(id) {
			return nil, "", visit.ErrBadCursor
		}
		inRefs = ok
		for i, ref := range refs {
			if ok && ref.day == day && ref.id == id {
				first = i + 1
			}
		}
		// A reference no longer in the trail (past retention): every
		// reference left is later.
	}
	if !inRefs {
		start := "-"
		if !q.From.IsZero() {
			start = strconv.FormatInt(q.From.Add(-auditSkew).UnixMilli(), 10)
		}
		if q.Cursor != "" {
			start = "(" + q.Cursor
		}
		page, last, done, err := s.readAudit(ctx, s.keys.auditVisit(q.Visit), start, q, q.Limit)
		if err != nil || !done {
			return page, last, err
		}
		out = page
	}
	// Records appended before From (less the clock skew) need not be read.
	since := q.From.Add(-auditSkew).UnixMilli()
	for first < len(refs) {
		ms, _, _ := strings.Cut(refs[first].id, "-")
		if n, _ := strconv.ParseInt(ms, 10, 64); q.From.IsZero() || n >= since {
			break
		}
		first++
	}
	for i := first; i < len(refs); i += auditBatch {
		recs, err := s.recordsAt(ctx, q.Visit, refs[i:min(i+auditBatch, len(refs))])
		if err != nil {
			return nil, "", err
		}
		for _, r := range recs {
			r, day := r.rec, r.day
			if r.At.After(q.To) {
				if r.At.After(q.To.Add(auditSkew)) {
					return out, "", nil // later records are later still
				}
				continue
			}
			if r.At.Before(q.From) {
				continue
			}
			out = append(out, r)
			if len(out) == q.Limit {
				return out, day + "|" + r.ID, nil
			}
		}
	}
	return out, "", nil
}

// readAudit reads the stream key from start (a stream id, "(" id
// exclusive, or "-") and returns up to n records matching q, the id of the
// last entry read, and whether the stream has nothing more for q.
func (s *Store) readAudit(ctx context.Context, key, start string, q audit.Query, n int) ([]audit.Record, string, bool, error) {
	var out []audit.Record
	for {
		msgs, err := s.rdb.XRangeN(ctx, key, start, "+", auditBatch).Result()
		if err != nil {
			return nil, "", false, fmt.Errorf("store: read audit: %w", err)
		}
		for _, m := range msgs {
			start = "(" + m.ID
			raw, _ := m.Values[auditField].(string)
			var r audit.Record
			if err := json.Unmarshal([]byte(raw), &r); err != nil {
				return nil, "", false, fmt.Errorf("store: read audit %s: %w", m.ID, err)
			}
			r.ID = m.ID
			if r.At.After(q.To) {
				if r.At.After(q.To.Add(auditSkew)) {
					return out, "", true, nil // later entries are later still
				}
				continue
			}
			if r.At.Before(q.From) || (q.Visit != "" && !contains(r.Visits, q.Visit)) {
				continue
			}
			out = append(out, r)
			if len(out) == n {
				return out, m.ID, false, nil
			}
		}
		if len(msgs) < auditBatch {
			return out, "", true, nil
		}
	}
}

// TrimAudit deletes the day streams of days that ended before cutoff and
// reports how many.
func (s *Store) TrimAudit(ctx context.Context, cutoff time.Time) (int, error) {
	days, err := s.rdb.ZRangeByScore(ctx, s.keys.auditDays(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(cutoff.Add(-24*time.Hour).Unix(), 10),
	}).Result()
	if err != nil {
		return 0, fmt.Errorf("store: trim audit: %w", err)
	}
	for _, d := range days {
		// The stream first: a crash in between leaves an index entry
		// pointing at nothing, which the next trim removes.
		if err := s.rdb.Del(ctx, s.keys.auditDay(d)).Err(); err != nil {
			return 0, fmt.Errorf("store: trim audit %s: %w", d, err)
		}
		if err := s.rdb.ZRem(ctx, s.keys.auditDays(), d).Err(); err != nil {
			return 0, fmt.Errorf("store: trim audit %s: %w", d, err)
		}
	}
	return len(days), nil
}

func validStreamID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return ok && err1 == nil && err2 == nil
}

func contains(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// LatestAudit returns the newest n records naming visit id, newest first.
func (s *Store) LatestAudit(ctx context.Context, id string, n int) ([]audit.Record, error) {
	refs, err := s.auditRefsOf(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]audit.Record, 0, n)
	for end := len(refs); end > 0 && len(out) < n; {
		from := max(0, end-(n-len(out)))
		recs, err := s.recordsAt(ctx, id, refs[from:end])
		if err != nil {
			return nil, err
		}
		for i := len(recs) - 1; i >= 0; i-- {
			out = append(out, recs[i].rec)
		}
		end = from
	}
	if len(out) == n {
		return out, nil
	}
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.auditVisit(id), "+", "-", int64(n-len(out))).Result()
	if err != nil {
		return nil, fmt.Errorf("store: latest audit %s: %w", id, err)
	}
	for _, m := range msgs {
		raw, _ := m.Values[auditField].(string)
		var r audit.Record
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return nil, fmt.Errorf("store: latest audit %s: %w", id, err)
		}
		r.ID = m.ID
		out = append(out, r)
	}
	return out, nil
}

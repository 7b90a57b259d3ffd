package store

import (
	"context"
	"encoding/json"
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

// AppendAudit appends r to the stream of r.At's UTC day and to the stream
// of each of r.Visits; a visit's stream drops entries older than retention
// and expires retention after its last one (whole days are trimmed by
// TrimAudit). The writes are pipelined, not atomic: a failure may leave a
// record in the day's stream only, and is returned.
func (s *Store) AppendAudit(ctx context.Context, r audit.Record, retention time.Duration) error {
	r.ID = ""
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	day := r.At.UTC().Truncate(24 * time.Hour)
	minID := strconv.FormatInt(r.At.Add(-retention).UnixMilli(), 10)
	pipe := s.rdb.Pipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.keys.auditDay(day.Format(auditDayLayout)), Values: []string{auditField, string(data)}})
	pipe.ZAdd(ctx, s.keys.auditDays(), redis.Z{Score: float64(day.Unix()), Member: day.Format(auditDayLayout)})
	for _, id := range r.Visits {
		// A visit's stream holds the record as it concerns that visit: a
		// batch of 10,000 visits is not copied 10,000 times.
		one := r
		one.Visits = []string{id}
		data, _ := json.Marshal(one)
		key := s.keys.auditVisit(id)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MinID: minID, Approx: true, Values: []string{auditField, string(data)}})
		pipe.PExpire(ctx, key, retention)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store: append audit: %w", err)
	}
	return nil
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
		start := "-"
		if !q.From.IsZero() {
			start = strconv.FormatInt(q.From.Add(-auditSkew).UnixMilli(), 10)
		}
		if q.Cursor != "" {
			if !validStreamID(q.Cursor) {
				return nil, "", visit.ErrBadCursor
			}
			start = "(" + q.Cursor
		}
		out, last, done, err := s.readAudit(ctx, s.keys.auditVisit(q.Visit), start, q, q.Limit)
		if err != nil || done {
			return out, "", err
		}
		return out, last, nil
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
	msgs, err := s.rdb.XRevRangeN(ctx, s.keys.auditVisit(id), "+", "-", int64(n)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: latest audit %s: %w", id, err)
	}
	out := make([]audit.Record, 0, len(msgs))
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

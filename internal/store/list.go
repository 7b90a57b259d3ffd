package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/visit"
)

// GetMany returns the visits with ids that exist, in the order given.
func (s *Store) GetMany(ctx context.Context, ids []string) ([]*visit.Visit, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	guests := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, s.keys.visit(id))
		guests[i] = pipe.HGetAll(ctx, s.keys.guests(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: get many: %w", err)
	}
	out := make([]*visit.Visit, 0, len(ids))
	for i, c := range cmds {
		raw, err := c.Bytes()
		if err != nil {
			continue
		}
		v, err := decodeWithGuests(raw, guests[i].Val())
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// List returns a page of visits and the cursor of the next page ("" at the
// end), newest schedule first or, with q.OldestFirst, oldest first.
func (s *Store) List(ctx context.Context, q visit.ListQuery) ([]*visit.Visit, string, error) {
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
		// The cursor's bound is the score the next page starts at: the
		// lowest still to read newest-first, the highest oldest-first.
		if q.OldestFirst {
			min = c.Max
		} else {
			max = c.Max
		}
		offset = c.Offset
	}
	rangeBy := s.rdb.ZRevRangeByScoreWithScores
	if q.OldestFirst {
		rangeBy = s.rdb.ZRangeByScoreWithScores
	}
	var out []*visit.Visit
	batch := int64(q.Limit) * 2
	if batch < 100 {
		batch = 100
	}
	for len(out) < q.Limit {
		zs, err := rangeBy(ctx, s.keys.schedule(), &redis.ZRangeBy{
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
				// The next page continues after this member: same bound
				// score, skipping what we consumed at that score.
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

// cursor is where a listing page ends: the bound score still to read (the
// max newest-first, the min oldest-first) and how many members at that
// score were already returned.
type cursor struct {
	Max    string `json:"m"`
	Offset int64  `json:"o"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, &c) != nil || c.Max == "" {
		return cursor{}, visit.ErrBadCursor
	}
	return c, nil
}

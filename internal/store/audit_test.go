package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
)

const retention = 6 * 365 * 24 * time.Hour

// A record is one record whatever trail it is read from: its id in a
// visit's trail is its id in the day's trail, and the visit's trail shows
// the record as it concerns that visit.
func TestAuditRecordHasOneIDInEveryTrail(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Now().UTC()
	rec := audit.Record{At: now, Actor: "token:ehr", Action: "POST /v1/visits/batch", Visits: []string{"V-a", "V-b"}, Status: 200}
	if err := s.AppendAudit(ctx, rec, retention); err != nil {
		t.Fatal(err)
	}
	day, _, err := s.AuditRecords(ctx, audit.Query{From: now.Add(-time.Minute)}, now.Add(time.Minute))
	if err != nil || len(day) != 1 {
		t.Fatalf("day trail = %+v, %v; want the record", day, err)
	}
	for _, id := range []string{"V-a", "V-b"} {
		got, _, err := s.AuditRecords(ctx, audit.Query{Visit: id}, now.Add(time.Minute))
		if err != nil || len(got) != 1 {
			t.Fatalf("trail of %s = %+v, %v; want the record", id, got, err)
		}
		if got[0].ID != day[0].ID || !slices.Equal(got[0].Visits, []string{id}) || got[0].Action != rec.Action || !got[0].At.Equal(now) {
			t.Errorf("trail of %s shows %+v; want record %s as it concerns %s", id, got[0], day[0].ID, id)
		}
		latest, err := s.LatestAudit(ctx, id, 5)
		if err != nil || len(latest) != 1 || latest[0].ID != day[0].ID {
			t.Errorf("LatestAudit(%s) = %+v, %v; want record %s", id, latest, err, day[0].ID)
		}
	}
}

// A visit whose trail began as a Redis stream (before the trail became a
// list of references into the day streams) reads as one trail: the old
// records first, then the new, every record once across pages, newest
// first for the board.
func TestAuditTrailOfAVisitWithAnOldStream(t *testing.T) {
	ctx := context.Background()
	_, conn, _ := newStoreOn(t)
	ns := redistest.Namespace(t)
	s := store.New(conn.Client, store.WithNamespace(ns))
	now := time.Now().UTC()
	key := ns + ":vf:audit:visit:{V-old}"
	for i := range 3 {
		b, _ := json.Marshal(audit.Record{At: now.Add(time.Duration(i-10) * time.Minute), Actor: "token:ehr",
			Action: "GET /v1/visits/{id}", Visits: []string{"V-old"}, Status: 200 + i})
		if err := conn.Client.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []string{"r", string(b)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 3; i < 6; i++ {
		if err := s.AppendAudit(ctx, audit.Record{At: now.Add(time.Duration(i-10) * time.Minute), Actor: "token:ehr",
			Action: "GET /v1/visits/{id}", Visits: []string{"V-old"}, Status: 200 + i}, retention); err != nil {
			t.Fatal(err)
		}
	}
	var got []int
	q := audit.Query{Visit: "V-old", Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("the trail never ends")
		}
		recs, next, err := s.AuditRecords(ctx, q, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, r.Status)
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if want := []int{200, 201, 202, 203, 204, 205}; !slices.Equal(got, want) {
		t.Errorf("pages through statuses %v; want %v", got, want)
	}
	latest, err := s.LatestAudit(ctx, "V-old", 4)
	if err != nil {
		t.Fatal(err)
	}
	var newest []int
	for _, r := range latest {
		newest = append(newest, r.Status)
	}
	if want := []int{205, 204, 203, 202}; !slices.Equal(newest, want) {
		t.Errorf("LatestAudit = %v; want %v", newest, want)
	}
}

// A visit's trail keeps what is inside retention: an older record is
// gone from it once a newer one is appended.
func TestAuditTrailOfAVisitDropsRecordsPastRetention(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Now().UTC()
	for _, at := range []time.Time{now.Add(-retention - 48*time.Hour), now} {
		if err := s.AppendAudit(ctx, audit.Record{At: at, Actor: "token:ehr", Action: "GET /v1/visits/{id}",
			Visits: []string{"V-ret"}, Status: 200}, retention); err != nil {
			t.Fatal(err)
		}
	}
	latest, err := s.LatestAudit(ctx, "V-ret", 10)
	if err != nil || len(latest) != 1 || !latest[0].At.Equal(now) {
		t.Fatalf("LatestAudit = %+v, %v; want only the record inside retention", latest, err)
	}
}

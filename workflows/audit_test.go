package workflows_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// TestAuditRetentionIsTrimmedByThePurge: the hourly retention purge deletes
// the audit days past audit.retention (6 years by default) and keeps the
// rest; records past retention are never shown.
func TestAuditRetentionIsTrimmedByThePurge(t *testing.T) {
	env := testenv.New(t, testenv.WithWorkers())
	ctx := context.Background()
	now := time.Now().UTC()
	old := now.Add(-env.Config.Audit.Retention - 48*time.Hour)
	for _, r := range []audit.Record{
		{At: old, Actor: "token:ehr", Action: "GET /v1/visits/{id}", Visits: []string{"V-r"}, Status: 200},
		{At: now.Add(-time.Hour), Actor: "token:ehr", Action: "GET /v1/visits/{id}", Visits: []string{"V-r"}, Status: 200},
	} {
		if err := env.Engine.RecordAudit(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	oldDay := env.Key("vf:audit:" + old.Format("2006-01-02"))
	if n := len(env.AllKeys(oldDay)); n != 1 {
		t.Fatalf("%s before the purge: %d keys; want 1", oldDay, n)
	}
	recs, _, err := env.Engine.AuditTrail(ctx, audit.Query{Visit: "V-r"})
	if err != nil || len(recs) != 1 || !recs[0].At.After(old) {
		t.Fatalf("AuditTrail(V-r) = %+v, %v; want only the recent record (the other is past retention)", recs, err)
	}

	env.RunTask(workflows.TypeRetentionPurge, workflows.Payload{})
	if n := len(env.AllKeys(oldDay)); n != 0 {
		t.Errorf("%s after the purge: %d keys; want it deleted", oldDay, n)
	}
	recs, _, err = env.Engine.AuditTrail(ctx, audit.Query{From: now.Add(-24 * time.Hour)})
	if err != nil || len(recs) != 1 {
		t.Errorf("AuditTrail(last day) after the purge = %+v, %v; want the recent record kept", recs, err)
	}
}

// TestAuditTrailPages: a visit's trail and a day's trail page with a
// cursor, oldest first, every record once.
func TestAuditTrailPages(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	start := time.Now().UTC().Add(-time.Hour)
	for i := 0; i < 7; i++ {
		r := audit.Record{At: start.Add(time.Duration(i) * time.Minute), Actor: "token:ehr", Action: "GET /v1/visits/{id}",
			Visits: []string{"V-p"}, Status: 200 + i}
		if i%2 == 1 {
			r.Visits = []string{"V-other"}
		}
		if err := env.Engine.RecordAudit(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		q    audit.Query
		want []int
	}{
		{audit.Query{Visit: "V-p", Limit: 2}, []int{200, 202, 204, 206}},
		{audit.Query{From: start.Add(-time.Minute), Limit: 3}, []int{200, 201, 202, 203, 204, 205, 206}},
		{audit.Query{From: start.Add(2 * time.Minute), To: start.Add(4 * time.Minute), Limit: 2}, []int{202, 203, 204}},
	} {
		var got []int
		q := tt.q
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("AuditTrail(%+v) never ends", tt.q)
			}
			recs, next, err := env.Engine.AuditTrail(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) > q.Limit {
				t.Errorf("a page of %d records; limit %d", len(recs), q.Limit)
			}
			for _, r := range recs {
				got = append(got, r.Status)
			}
			if next == "" {
				break
			}
			q.Cursor = next
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("AuditTrail(%+v) pages through statuses %v; want %v", tt.q, got, tt.want)
		}
	}
	if _, _, err := env.Engine.AuditTrail(ctx, audit.Query{Cursor: "nonsense"}); !errors.Is(err, visit.ErrBadCursor) {
		t.Errorf("AuditTrail with a foreign cursor = %v; want ErrBadCursor", err)
	}
}

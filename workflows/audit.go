package workflows

import (
	"context"
	"time"

	"github.com/visitflow/visitflow/internal/audit"
)

// defaultAuditSpan is how far back a query without from and without a
// visit reaches.
const defaultAuditSpan = 7 * 24 * time.Hour

// AuditStore keeps the audit trail (implemented by *store.Store).
type AuditStore interface {
	AppendAudit(ctx context.Context, r audit.Record, retention time.Duration) error
	AuditRecords(ctx context.Context, q audit.Query, now time.Time) ([]audit.Record, string, error)
	TrimAudit(ctx context.Context, cutoff time.Time) (int, error)
	LatestAudit(ctx context.Context, id string, n int) ([]audit.Record, error)
}

// RecordAudit appends r to the audit trail, stamped now when r.At is zero.
// The HTTP edge calls it for every request that reads or changes a visit.
func (e *Engine) RecordAudit(ctx context.Context, r audit.Record) error {
	if r.At.IsZero() {
		r.At = e.clock.Now().UTC()
	}
	return e.store.AppendAudit(ctx, r, e.cfg.Audit.Retention)
}

// AuditTrail returns a page of audit records matching q, oldest first, and
// the next page's cursor ("" at the end); a foreign cursor is
// visit.ErrBadCursor.
func (e *Engine) AuditTrail(ctx context.Context, q audit.Query) ([]audit.Record, string, error) {
	now := e.clock.Now().UTC()
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() && q.Visit == "" {
		q.From = q.To.Add(-defaultAuditSpan)
	}
	// Records past retention are not shown even before the trim removes
	// them (a visit's own stream is trimmed only as it grows).
	if oldest := now.Add(-e.cfg.Audit.Retention); q.From.Before(oldest) {
		q.From = oldest
	}
	return e.store.AuditRecords(ctx, q, now)
}

// TrimAudit deletes the audit records of whole days older than
// audit.retention (run by the hourly retention purge) and reports how many
// days it deleted.
func (e *Engine) TrimAudit(ctx context.Context) (int, error) {
	return e.store.TrimAudit(ctx, e.clock.Now().Add(-e.cfg.Audit.Retention))
}

// LatestAudit returns the newest n audit records of visit id, newest first
// (the visit board shows them).
func (e *Engine) LatestAudit(ctx context.Context, id string, n int) ([]audit.Record, error) {
	return e.store.LatestAudit(ctx, id, n)
}

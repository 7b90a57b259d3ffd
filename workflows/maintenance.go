package workflows

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
)

// MaintenanceSchedule is what the scheduler role enqueues periodically.
type MaintenanceSchedule struct {
	OutboxSweep    string // cron spec, e.g. "@every 30s"
	RetentionPurge string // e.g. "@every 1h"
	// ReconcileEvery is twilio.reconcile_interval; 0: never.
	ReconcileEvery time.Duration
}

// DefaultMaintenance is the scheduler role's production cadence, with
// reconciliation every twilio.reconcile_interval (none when it is 0).
func DefaultMaintenance(reconcileInterval time.Duration) MaintenanceSchedule {
	return MaintenanceSchedule{OutboxSweep: "@every 30s", RetentionPurge: "@every 1h", ReconcileEvery: reconcileInterval}
}

// RegisterMaintenance registers the maintenance tasks with an Asynq
// scheduler, on the queues of namespace (redis.namespace). Two schedulers (a mistake, or a deploy overlap) are harmless:
// asynq.Unique admits one task per firing window, and both tasks are
// idempotent (re-sending outbox entries is deduplicated by task ID; purging
// a purged visit does nothing).
func RegisterMaintenance(s *asynq.Scheduler, namespace string, m MaintenanceSchedule, uniqueFor time.Duration) error {
	type periodic struct {
		spec, typ string
		unique    time.Duration
	}
	tasks := []periodic{{m.OutboxSweep, TypeOutboxSweep, uniqueFor}, {m.RetentionPurge, TypeRetentionPurge, uniqueFor}}
	if m.ReconcileEvery > 0 {
		// Unique for less than one interval, so a slow run never swallows the next.
		tasks = append(tasks, periodic{"@every " + m.ReconcileEvery.String(), TypeReconcile, min(uniqueFor, max(m.ReconcileEvery/2, time.Second))})
	}
	for _, t := range tasks {
		if _, err := s.Register(t.spec, asynq.NewTask(t.typ, nil),
			asynq.Queue(QueueName(namespace, taskQueues[t.typ])), asynq.Unique(t.unique), asynq.MaxRetry(1)); err != nil {
			return fmt.Errorf("register %s: %w", t.typ, err)
		}
	}
	return nil
}

// finishedAt is when a finished visit finished (its latest ending fact).
func finishedAt(v *visit.Visit) time.Time {
	var t time.Time
	for _, p := range []*time.Time{v.Facts.RoomEndedAt, v.Facts.CancelledAt, v.Facts.NoShowAt} {
		if p != nil && p.After(t) {
			t = *p
		}
	}
	if t.IsZero() {
		t = v.ScheduledAt
	}
	return t
}

// PurgeFinished deletes visits that finished (and were scheduled) more than
// visits.retention ago and reports how many. Unfinished visits are kept,
// however old. Each delete re-checks the visit in a transaction, so two
// schedulers purging at once delete each visit once.
func (e *Engine) PurgeFinished(ctx context.Context) (int, error) {
	cutoff := e.clock.Now().Add(-e.cfg.Visits.Retention)
	keep := func(v *visit.Visit) bool {
		return !v.Finished() || finishedAt(v).After(cutoff) || v.ScheduledAt.After(cutoff)
	}
	purged := 0
	var offset int64
	const page = 500
	for {
		// Candidates come from the schedule index: a visit is due when both
		// its scheduled time and its finish are older than the cutoff (a
		// visit cancelled weeks ahead is kept until retention after the time
		// it was scheduled for, which errs on the side of keeping records).
		ids, err := e.store.ScheduledBefore(ctx, cutoff, offset, page)
		if err != nil {
			return purged, err
		}
		kept := int64(0)
		for _, id := range ids {
			deleted, err := e.store.Delete(ctx, id, keep)
			if err != nil {
				return purged, err
			}
			if deleted {
				purged++
			} else {
				kept++
			}
		}
		if len(ids) < page {
			return purged, nil
		}
		offset += kept
	}
}

func (e *Engine) handleRetentionPurge(ctx context.Context, _ *asynq.Task) error {
	n, err := e.PurgeFinished(ctx)
	if n > 0 {
		e.log.Info("retention purge deleted finished visits", zap.Int("visits", n))
	}
	if err != nil {
		return err
	}
	days, err := e.TrimAudit(ctx)
	if days > 0 {
		e.log.Info("retention purge deleted audit days past audit.retention", zap.Int("days", days))
	}
	return err
}

package workflows

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
)

// flush hands a change's outbox entries to Asynq, then hands the
// acknowledgement of the ones Asynq took to e.acks, which sends it behind
// the answer, many visits per round trip (acks.go). Failures leave entries
// in the outbox for the sweeper: the change is already committed, so
// nothing is lost. When every entry went, the visit leaves the pending set
// with the acknowledgement, so the set stays the short list of outboxes
// that may still hold something (it once kept every id ever flushed, and
// after a crash the sweeper drained it 1,000 ids per run).
func (e *Engine) flush(ctx context.Context, visitID string, jobs []visit.Job) {
	if len(jobs) == 0 {
		return
	}
	for _, j := range jobs {
		if j.Delete {
			// An earlier change's entry for the task still queued for
			// acknowledgement must not outlive its deletion (acks.go).
			e.acks.wait()
			break
		}
	}
	done := e.sendAll(ctx, visitID, jobs)
	if len(done) > 0 {
		e.acks.hand(outboxAck{visitID: visitID, jobIDs: done, all: len(done) == len(jobs)})
	}
}

// flushJobs sends and acknowledges jobs; true when all of them went.
func (e *Engine) flushJobs(ctx context.Context, visitID string, jobs []visit.Job) bool {
	done := e.sendAll(ctx, visitID, jobs)
	if err := e.store.AckOutbox(ctx, visitID, done...); err != nil {
		e.log.Warn("outbox: ack failed", zap.String("visit", visitID), zap.Error(err))
		return false
	}
	return len(done) == len(jobs)
}

// sendAll sends jobs and returns the IDs of those Asynq took.
func (e *Engine) sendAll(ctx context.Context, visitID string, jobs []visit.Job) []string {
	done := make([]string, 0, len(jobs))
	for _, j := range jobs {
		if err := e.send(ctx, j); err != nil {
			e.log.Warn("outbox: enqueue failed; the sweeper will retry",
				zap.String("visit", visitID), zap.String("job", j.ID), zap.Error(err))
			continue
		}
		done = append(done, j.ID)
	}
	return done
}

// send enqueues (or deletes) one job. A task ID already taken means the job
// was sent before: that is success, which makes re-sending harmless.
func (e *Engine) send(ctx context.Context, j visit.Job) error {
	queue := j.Queue
	if queue == "" {
		queue = QueueDefault
	}
	// The outbox keeps the logical queue; the namespace is this deployment's.
	queue = QueueName(e.cfg.Redis.Namespace, queue)
	if j.Delete {
		if e.deleter == nil {
			return nil
		}
		err := e.deleter.DeleteTask(queue, j.ID)
		if err == nil || errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return nil
		}
		return err
	}
	opts := []asynq.Option{asynq.TaskID(j.ID), asynq.Queue(queue), asynq.MaxRetry(10),
		// Keeping finished tasks for a while keeps their IDs taken, so a
		// late re-flush of the same entry is refused by Asynq as well.
		asynq.Retention(24 * time.Hour)}
	if !j.ProcessAt.IsZero() {
		opts = append(opts, asynq.ProcessAt(j.ProcessAt))
	}
	_, err := e.queue.EnqueueContext(ctx, asynq.NewTask(j.Type, j.Payload), opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) || errors.Is(err, asynq.ErrDuplicateTask) {
		return nil
	}
	return err
}

// SweepOutbox flushes outbox entries left behind by a crash or a failed
// enqueue. It returns how many entries it handed to Asynq. A full sweep also
// scans the keyspace for outboxes whose pending mark was lost.
func (e *Engine) SweepOutbox(ctx context.Context, full bool) (int, error) {
	// What this process flushed and is still acknowledging is not stranded.
	e.acks.wait()
	ids, err := e.store.PendingOutboxes(ctx, 1000)
	if err != nil {
		return 0, err
	}
	if full {
		scanned, err := e.store.ScanOutboxes(ctx)
		if err != nil {
			return 0, err
		}
		ids = append(ids, scanned...)
	}
	n := 0
	for _, id := range ids {
		jobs, err := e.store.Outbox(ctx, id)
		if err != nil {
			return n, err
		}
		e.flushJobs(ctx, id, jobs)
		n += len(jobs)
		if err := e.store.ClearPendingIfEmpty(ctx, id); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (e *Engine) handleOutboxSweep(ctx context.Context, t *asynq.Task) error {
	// The payload "full" asks for the keyspace scan too (run less often).
	n, err := e.SweepOutbox(ctx, string(t.Payload()) == "full")
	if n > 0 {
		e.log.Info("outbox sweep re-sent entries", zap.Int("entries", n))
	}
	return err
}

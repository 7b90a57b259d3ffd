package workflows

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// outboxAcks acknowledges outbox entries Asynq has taken, behind the answer
// to whoever caused them: a flush hands its acknowledgement over and
// returns, and the acknowledgements that arrive while one round trip is out
// go together in the next, so under load many visits share one round trip
// instead of each callback paying its own.
//
// Nothing is lost or done twice by the wait: an acknowledgement that never
// lands (the process died, Redis failed) leaves its entries in the outbox,
// the sweeper sends them again, and Asynq refuses them, as their task IDs
// stay taken for a day after the task ran (send). Two things must not
// overtake an acknowledgement still queued, and wait for it: a deletion
// (sent again after it, an entry still in the outbox would bring the
// deleted task back) and the sweeper (it would re-send what is merely
// queued here).
type outboxAcks struct {
	store Store
	log   *zap.Logger

	mu      sync.Mutex
	landed  *sync.Cond // broadcast when a round trip ends
	queued  []outboxAck
	running bool  // a goroutine is sending
	handed  int64 // acknowledgements handed over so far
	done    int64 // of those, how many have been sent (landed or failed)
}

// outboxAck is one flush's acknowledgement: the entries of visitID that
// went, and whether that was all of them (then the visit leaves the
// pending set when its outbox is empty).
type outboxAck struct {
	visitID string
	jobIDs  []string
	all     bool
}

// maxAcksPerTrip bounds one round trip's pipeline.
const maxAcksPerTrip = 512

// ackTimeout bounds one round trip: it runs after the request that caused
// it has been answered, so it cannot use that request's context.
const ackTimeout = 10 * time.Second

// acksStore is what acknowledging many visits in one round trip needs
// (implemented by *store.Store; the batch create uses it too); a Store
// without it is acknowledged visit by visit.
type acksStore interface {
	// AckOutboxes is AckOutbox for each visit, and the clearing of
	// AckOutboxAndClear where all of its entries went.
	AckOutboxes(ctx context.Context, ids []string, jobs [][]string, all []bool) error
}

func newOutboxAcks(s Store, log *zap.Logger) *outboxAcks {
	a := &outboxAcks{store: s, log: log}
	a.landed = sync.NewCond(&a.mu)
	return a
}

// hand queues one acknowledgement and returns at once.
func (a *outboxAcks) hand(ack outboxAck) {
	a.mu.Lock()
	a.queued = append(a.queued, ack)
	a.handed++
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		go a.send()
	}
}

// send empties the queue, a batch per round trip, then ends.
func (a *outboxAcks) send() {
	for {
		a.mu.Lock()
		n := min(len(a.queued), maxAcksPerTrip)
		if n == 0 {
			a.running = false
			a.mu.Unlock()
			return
		}
		batch := a.queued[:n:n]
		a.queued = a.queued[n:]
		a.mu.Unlock()

		a.ack(batch)

		a.mu.Lock()
		a.done += int64(n)
		a.landed.Broadcast()
		a.mu.Unlock()
	}
}

func (a *outboxAcks) ack(batch []outboxAck) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	if many, ok := a.store.(acksStore); ok {
		ids, jobs, all := make([]string, len(batch)), make([][]string, len(batch)), make([]bool, len(batch))
		for i, b := range batch {
			ids[i], jobs[i], all[i] = b.visitID, b.jobIDs, b.all
		}
		if err := many.AckOutboxes(ctx, ids, jobs, all); err != nil {
			a.log.Warn("outbox: ack failed; the sweeper will re-send", zap.Int("visits", len(batch)), zap.Error(err))
		}
		return
	}
	for _, b := range batch {
		var err error
		if b.all {
			err = a.store.AckOutboxAndClear(ctx, b.visitID, b.jobIDs...)
		} else {
			err = a.store.AckOutbox(ctx, b.visitID, b.jobIDs...)
		}
		if err != nil {
			a.log.Warn("outbox: ack failed; the sweeper will re-send", zap.String("visit", b.visitID), zap.Error(err))
		}
	}
}

// wait returns once every acknowledgement handed over before it was called
// has been sent.
func (a *outboxAcks) wait() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for target := a.handed; a.done < target; {
		a.landed.Wait()
	}
}

package redisx

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
)

// StartEmbedded starts a miniredis on a free loopback port. TTLs follow the
// wall clock (ClockTTL): miniredis by default only expires keys when a test
// calls FastForward, and visitflow's own TTLs (locks, retention) and Asynq's
// (server heartbeats, unique-task locks) must really expire in a running
// process. Connect uses it for an empty URL; the caller stops it with Close.
func StartEmbedded() (*miniredis.Miniredis, error) {
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start miniredis: %w", err)
	}
	return m, nil
}

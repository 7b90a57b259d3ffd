package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dial-in records. Each script below touches exactly one key, so each is
// atomic on a single Redis and on Cluster alike (a script's keys must share
// a slot). Nothing here holds a phone number: callers and patient phones
// arrive as keyed hashes the engine computes.

// holdPINScript keeps a PIN reserved for its visit until the end of the
// visit's (possibly moved) dial-in window.
//
//	KEYS[1] vf:idx:pin:<pin>
//	ARGV[1] visit id
//	ARGV[2] hold, in milliseconds from now
//
// Returns 1 when the key now holds the visit id with that expiry (it held
// it already, or it was free and is taken now), 0 when another visit holds
// the PIN.
var holdPINScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// countScript counts one event in a counter that expires a fixed time
// after its first count, so a crash can never leave a counter without an
// expiry (INCR and PEXPIRE run as one step).
//
//	KEYS[1] the counter
//	ARGV[1] its lifetime in milliseconds, from the first count
//
// Returns the count including this one.
var countScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// extendScript sets a marker whose expiry only ever moves later.
//
//	KEYS[1] the marker
//	ARGV[1] the wanted lifetime in milliseconds from now
//
// Returns 1.
var extendScript = redis.NewScript(`
local left = redis.call('PTTL', KEYS[1])
if left ~= -1 and left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
`)

// ReservePIN claims a free pin for visit id for hold; false when another
// visit holds it. One SET NX: two visits can never both win one PIN.
func (s *Store) ReservePIN(ctx context.Context, pin, id string, hold time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.keys.pinIndex(pin), id, atLeastASecond(hold)).Result()
	if err != nil {
		return false, fmt.Errorf("store: reserve pin: %w", err)
	}
	return ok, nil
}

// HoldPIN keeps visit id's pin reserved for hold from now (after a
// reschedule moved its window); false when the reservation had lapsed and
// another visit took the PIN meanwhile.
func (s *Store) HoldPIN(ctx context.Context, pin, id string, hold time.Duration) (bool, error) {
	n, err := holdPINScript.Run(ctx, s.rdb, []string{s.keys.pinIndex(pin)}, id, atLeastASecond(hold).Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("store: hold pin: %w", err)
	}
	return n == 1, nil
}

// AddDialInFailure counts one wrong PIN: for caller (a keyed hash of the
// number), in a counter living callerWindow from its first count, and for
// everyone in the budget window named window, living windowLength. It
// returns both counts including this one.
func (s *Store) AddDialInFailure(ctx context.Context, caller string, callerWindow time.Duration, window string, windowLength time.Duration) (callerN, everyone int, err error) {
	// Two keys in two slots: two single-key steps, each atomic. The counts
	// need not move together; each only ever grows within its window.
	callerN, err = countScript.Run(ctx, s.rdb, []string{s.keys.dialInFail(caller)}, atLeastASecond(callerWindow).Milliseconds()).Int()
	if err != nil {
		return 0, 0, fmt.Errorf("store: count dial-in failure: %w", err)
	}
	everyone, err = countScript.Run(ctx, s.rdb, []string{s.keys.dialInBudget(window)}, atLeastASecond(windowLength).Milliseconds()).Int()
	if err != nil {
		return 0, 0, fmt.Errorf("store: count dial-in failure: %w", err)
	}
	return callerN, everyone, nil
}

// DialInStanding returns the wrong PINs counted for caller and for everyone
// in window, and whether patientPhone (a keyed hash of the caller's number)
// is the patient phone of a visit whose dial-in window has not ended.
func (s *Store) DialInStanding(ctx context.Context, caller, window, patientPhone string) (callerN, everyone int, patient bool, err error) {
	pipe := s.rdb.Pipeline()
	c := pipe.Get(ctx, s.keys.dialInFail(caller))
	w := pipe.Get(ctx, s.keys.dialInBudget(window))
	p := pipe.Exists(ctx, s.keys.patientPhone(patientPhone))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, false, fmt.Errorf("store: dial-in standing: %w", err)
	}
	callerN, _ = c.Int()
	everyone, _ = w.Int()
	return callerN, everyone, p.Val() == 1, nil
}

// RememberPatientPhone marks hash (a keyed hash of a patient's number) as
// the patient phone of a visit whose dial-in window lasts hold from now; a
// mark that already lasts longer is kept.
func (s *Store) RememberPatientPhone(ctx context.Context, hash string, hold time.Duration) error {
	if err := extendScript.Run(ctx, s.rdb, []string{s.keys.patientPhone(hash)}, atLeastASecond(hold).Milliseconds()).Err(); err != nil {
		return fmt.Errorf("store: remember patient phone: %w", err)
	}
	return nil
}

// atLeastASecond keeps an expiry positive: go-redis reads a zero or
// negative one as "no expiry".
func atLeastASecond(d time.Duration) time.Duration { return max(d, time.Second) }

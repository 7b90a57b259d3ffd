package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// What a create that did not store its visit gives back: it reserved a
// dial-in PIN and wrote index entries before its transaction, and no visit
// will ever hold them.

// ReleasePIN gives pin back when visit id holds it: a create that reserved
// it and then failed, or lost a race for its id, must not keep a PIN no
// visit uses.
func (s *Store) ReleasePIN(ctx context.Context, pin, id string) error {
	if err := releaseIndex.Run(ctx, s.rdb, []string{s.keys.pinIndex(pin)}, id).Err(); err != nil {
		return fmt.Errorf("store: release pin: %w", err)
	}
	return nil
}

// releaseIndex deletes an index entry only while it still names the visit
// whose create is being undone; an entry another visit holds stays.
//
//	KEYS[1] the index key (vf:idx:pin:<pin>)
//	ARGV[1] the visit id the entry must hold
//
// Returns 1 when the entry was deleted, else 0.
var releaseIndex = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
`)

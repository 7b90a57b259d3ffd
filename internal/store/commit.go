package store

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// commitChange writes one visit's change if the visit is still at the
// revision the change was computed from: Go reads the visit (or starts from
// its snapshot, recent.go), decides, and this script commits, so an update
// costs at most one read and one write round trip and never holds a WATCH.
// Every key is in the visit's {id} slot.
//
//	KEYS[1] vf:visit:{id}           the stored visit ("<rev>\n<json>")
//	KEYS[2] vf:visit:{id}:timeline  timeline entries (RPUSH)
//	KEYS[3] vf:visit:{id}:outbox    outbox entries (HSET job ID → job)
//	KEYS[4] vf:visit:{id}:seen      idempotency tokens already applied
//	KEYS[5] vf:visit:{id}:guests    the visit's guests (HSET SID → participant)
//	ARGV[1] what the stored visit must start with: revisionHead of the
//	        revision read
//	ARGV[2] the new stored visit; "" keeps the visit as it is (a repeated
//	        fact whose token is still recorded)
//	ARGV[3] idempotency token; "" for none
//	ARGV[4] how long tokens are kept, in seconds
//	ARGV[5] n, the number of timeline entries
//	ARGV[6] g, the number of guests written
//	ARGV[7] the change's guest scope: "" for all guests, else one SID
//	ARGV[8 .. 7+n] the timeline entries
//	ARGV[8+n .. 7+n+2g] the guests: SID, participant, SID, participant, …
//	ARGV[8+n+2g ..] the outbox entries: job ID, job, job ID, job, …
//
// Returns 1 when committed; -1 when another writer applied the token
// meanwhile: a duplicate, nothing written. When the visit moved on since
// the revision the change was made from, it writes nothing and returns
// the visit as it now is, so the caller decides again without reading:
// {0} when the visit is gone, else {0, stored visit, guest count, guests},
// the guests being, for scope "", every SID and participant (HGETALL),
// for a SID, that guest's participant when it is one. Every write of a
// change rewrites the visit (its updated_at moves), so a guest written here
// can never overwrite a newer one: the newer writer moved the revision.
var commitChange = redis.NewScript(`
local head = ARGV[1]
if redis.call("GETRANGE", KEYS[1], 0, #head - 1) ~= head then
  local now = redis.call("GET", KEYS[1])
  if not now then
    return {0}
  end
  if ARGV[7] == "" then
    local all = redis.call("HGETALL", KEYS[5])
    return {0, now, #all / 2, unpack(all)}
  end
  local p = redis.call("HGET", KEYS[5], ARGV[7])
  local n = redis.call("HLEN", KEYS[5])
  if p then
    return {0, now, n, p}
  end
  return {0, now, n}
end
if ARGV[3] ~= "" then
  if redis.call("SADD", KEYS[4], ARGV[3]) == 0 then
    return -1
  end
  redis.call("EXPIRE", KEYS[4], ARGV[4])
end
if ARGV[2] ~= "" then
  redis.call("SET", KEYS[1], ARGV[2])
end
local n = tonumber(ARGV[5])
local g = tonumber(ARGV[6])
if n > 0 then
  redis.call("RPUSH", KEYS[2], unpack(ARGV, 8, 7 + n))
end
if g > 0 then
  redis.call("HSET", KEYS[5], unpack(ARGV, 8 + n, 7 + n + 2 * g))
end
if #ARGV > 7 + n + 2 * g then
  redis.call("HSET", KEYS[3], unpack(ARGV, 8 + n + 2 * g, #ARGV))
end
return 1
`)

// Outcomes of commitChange.
const (
	commitDone      = 1
	commitStale     = 0
	commitDuplicate = -1
)

// commitArgs are commitChange's ARGV for a change read at revision rev.
func commitArgs(rev int64, value []byte, token, scope string, enc encodedPending, guests map[string][]byte) []any {
	args := make([]any, 0, 7+len(enc.timeline)+2*len(guests)+2*len(enc.jobs))
	args = append(args, revisionHead(rev), value, token, strconv.Itoa(int(seenTTL.Seconds())), len(enc.timeline), len(guests), scope)
	args = append(args, enc.timeline...)
	for sid, p := range guests {
		args = append(args, sid, p)
	}
	for id, job := range enc.jobs {
		args = append(args, id, job)
	}
	return args
}

// runScript runs script on c (a client or a pipeline) by its SHA, as
// EVALSHA, or with its source when eval: the caller asks for that after
// Redis answered NOSCRIPT (a restarted or new server that has not seen the
// script yet). Unlike Script.Run this works inside a pipeline.
func runScript(ctx context.Context, c redis.Scripter, script *redis.Script, eval bool, keys []string, args ...any) *redis.Cmd {
	if eval {
		return script.Eval(ctx, c, keys, args...)
	}
	return script.EvalSha(ctx, c, keys, args...)
}

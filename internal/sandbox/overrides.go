package sandbox

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Twilio's connection overrides (twilio-protocol §4): a Voice webhook URL may
// carry, in its fragment, how Twilio connects and retries:
//
//	ct  connect timeout, ms (default 5000)
//	rt  read timeout, ms (default 15000)
//	tt  total time for all tries, ms (default 15000, Twilio's hard limit for
//	    call-related requests)
//	rc  retry count, 0 to 5 (default 1)
//	rp  retry policy, comma-separated: ct (failed connect), rt (read
//	    timeout), 4xx, 5xx, all (default ct)
//
// Without overrides a 5xx answer is not retried: that callback is lost.
type overrides struct {
	read, total time.Duration
	retries     int
	policy      map[failure]bool
}

// failure is why one delivery try failed.
type failure int

const (
	failNone failure = iota
	failConnect
	failRead
	fail4xx
	fail5xx
	failOther
)

// retryPauseSeconds is the pause between two tries, in emulator seconds.
// Twilio does not document one; half a second keeps retries quick.
const retryPauseSeconds = 0.5

var defaultOverrides = overrides{read: 15 * time.Second, total: 15 * time.Second, retries: 1,
	policy: map[failure]bool{failConnect: true}}

// overridable reports whether requests of kind honour connection overrides:
// the Voice webhooks (status callbacks and TwiML fetches). Other callbacks
// keep Twilio's default (retry a failed connect once).
func overridable(kind string) bool { return kind == KindVoiceStatus || kind == KindVoiceTwiML }

// parseOverrides reads a URL fragment; malformed or out-of-range values keep
// their defaults.
func parseOverrides(fragment string) overrides {
	ov := defaultOverrides
	q, err := url.ParseQuery(fragment)
	if fragment == "" || err != nil {
		return ov
	}
	ms := func(key string, def time.Duration) time.Duration {
		n, err := strconv.Atoi(q.Get(key))
		if err != nil || n <= 0 {
			return def
		}
		return time.Duration(n) * time.Millisecond
	}
	ov.read = ms("rt", ov.read)
	ov.total = min(ms("tt", ov.total), 15*time.Second)
	if n, err := strconv.Atoi(q.Get("rc")); err == nil && n >= 0 && n <= 5 {
		ov.retries = n
	}
	if rp := q.Get("rp"); rp != "" {
		ov.policy = map[failure]bool{}
		for _, p := range strings.Split(rp, ",") {
			switch strings.TrimSpace(p) {
			case "ct":
				ov.policy[failConnect] = true
			case "rt":
				ov.policy[failRead] = true
			case "4xx":
				ov.policy[fail4xx] = true
			case "5xx":
				ov.policy[fail5xx] = true
			case "all":
				for _, f := range []failure{failConnect, failRead, fail4xx, fail5xx} {
					ov.policy[f] = true
				}
			}
		}
	}
	return ov
}

func (ov overrides) retryOn(f failure) bool { return ov.policy[f] }

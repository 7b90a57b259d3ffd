// Package redisurl is the syntax of the Redis URLs visitflow accepts
// (redis://, rediss://, redis-cluster://, redis-sentinel://) as far as it is
// needed without a Redis client: masking the password for logs and config
// dumps. It imports only the standard library, so internal/config can use it
// without linking Redis client code.
package redisurl

import "strings"

// Mask returns rawURL with its password replaced by "****", for logs and
// error messages. The username stays visible. In the redis-sentinel form a
// userinfo without a colon is the password and is masked whole. Mask never
// fails: a string it cannot split is masked from the scheme to the last "@".
func Mask(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		if i := strings.LastIndex(rawURL, "@"); i >= 0 {
			return "****" + rawURL[i:]
		}
		return rawURL
	}
	authority, tail := SplitAuthority(rest)
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return rawURL
	}
	userinfo, hosts := authority[:at], authority[at+1:]
	switch user, _, hasPass := strings.Cut(userinfo, ":"); {
	case hasPass:
		userinfo = user + ":****"
	case scheme == "redis" || scheme == "rediss" || scheme == "redis-cluster":
		// A bare userinfo is a username in these forms, as in go-redis.
	default:
		userinfo = "****"
	}
	return scheme + "://" + userinfo + "@" + hosts + tail
}

// SplitAuthority splits "userinfo@hosts/path?query" at the first "/", "?" or
// "#" after the last "@", so a password may contain any of them.
func SplitAuthority(rest string) (authority, tail string) {
	from := strings.LastIndex(rest, "@") + 1
	if i := strings.IndexAny(rest[from:], "/?#"); i >= 0 {
		return rest[:from+i], rest[from+i:]
	}
	return rest, ""
}

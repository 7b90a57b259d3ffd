// Package redisx owns the way visitflow reaches Redis: it turns a redis.url
// (contract §3) into a go-redis client plus the matching Asynq connection
// option and starts the embedded in-memory Redis when no URL is configured.
// The test harness that finds or starts a Redis for every package's tests
// (contract §9) is in package redistest, so that production binaries do not
// link package testing.
package redisx

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/visitflow/visitflow/internal/redisurl"
)

// Conn is an open connection to Redis: the client visitflow's own code uses
// and the option Asynq needs to open its own connections to the same server.
type Conn struct {
	// Client is the go-redis client: a *redis.Client for redis:// and rediss://
	// (and the embedded server), a *redis.ClusterClient for redis-cluster://,
	// a *redis.Client talking through Sentinel for redis-sentinel://.
	Client redis.UniversalClient
	// Asynq reaches the same server: asynq.RedisClientOpt,
	// asynq.RedisClusterClientOpt or asynq.RedisFailoverClientOpt.
	Asynq asynq.RedisConnOpt
	// Embedded is true when Connect started an in-memory miniredis because
	// the URL was empty. Its data is lost when the process exits.
	Embedded bool
	// Addr describes the server for log lines, as a URL whose password is
	// masked; for the embedded server it is the loopback URL it listens on.
	Addr string
	// Close closes Client and, when Embedded, stops the in-memory server.
	Close func() error
}

// Connect opens a client for rawURL and pings it. The accepted forms are
//
//	redis://[user:pass@]host[:port][/db]
//	rediss://[user:pass@]host[:port][/db]          (TLS, server name = host)
//	redis-cluster://[user:pass@]h1:p1,h2:p2[,…]    (seed nodes of a Redis Cluster)
//	redis-sentinel://[[user:]pass@]h1:p1,h2:p2[,…]/master[/db]
//
// The port defaults to 6379 (26379 for sentinels), the db to 0. In the
// sentinel form the password is for the master and replicas; the sentinels
// themselves are reached without authentication. Query parameters are not
// accepted, so a typo cannot silently change behaviour.
//
// An empty rawURL starts an embedded miniredis on a loopback port (development
// only) and sets Embedded. Connect fails when the URL is malformed or the ping
// does not succeed before ctx ends (or within 5 s when ctx has no deadline);
// the error names the URL with its password masked.
func Connect(ctx context.Context, rawURL string) (*Conn, error) {
	if rawURL == "" {
		return connectEmbedded(ctx)
	}
	tg, err := parseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redisx: connect %s: %w", redisurl.Mask(rawURL), err)
	}
	c := &Conn{Client: tg.client(), Asynq: tg.asynqOpt(), Addr: redisurl.Mask(rawURL)}
	c.Close = c.Client.Close
	if err := Ping(ctx, c.Client); err != nil {
		c.Client.Close()
		return nil, fmt.Errorf("redisx: connect %s: %w", c.Addr, err)
	}
	return c, nil
}

func connectEmbedded(ctx context.Context) (*Conn, error) {
	e, err := StartEmbedded()
	if err != nil {
		return nil, fmt.Errorf("redisx: connect embedded: %w", err)
	}
	tg := target{kind: kindSingle, addrs: []string{e.Addr()}}
	c := &Conn{Client: tg.client(), Asynq: tg.asynqOpt(), Embedded: true, Addr: "redis://" + e.Addr() + "/0"}
	c.Close = func() error {
		err := c.Client.Close()
		e.Close()
		return err
	}
	if err := Ping(ctx, c.Client); err != nil {
		c.Close()
		return nil, fmt.Errorf("redisx: connect embedded %s: %w", c.Addr, err)
	}
	return c, nil
}

// NewClient returns a go-redis client for rawURL, built as Connect builds
// Conn.Client, without pinging it. It fails only when rawURL is malformed (an
// empty rawURL is malformed here: only Connect starts the embedded server);
// the error never contains the password.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	tg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return tg.client(), nil
}

// URLForDB returns rawURL rewritten to select logical database db, keeping
// its scheme, credentials and hosts as written. A redis-cluster:// URL has
// only database 0 and is returned unchanged. It fails, like NewClient, when
// rawURL is malformed, or when db is negative or not 0 for a cluster.
func URLForDB(rawURL string, db int) (string, error) {
	tg, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	scheme, rest, _ := strings.Cut(rawURL, "://")
	if db < 0 || (tg.kind == kindCluster && db != 0) {
		return "", fmt.Errorf("invalid db %d for %s://", db, scheme)
	}
	authority, _ := redisurl.SplitAuthority(rest)
	switch tg.kind {
	case kindCluster:
		return rawURL, nil
	case kindSentinel:
		return fmt.Sprintf("%s://%s/%s/%d", scheme, authority, tg.master, db), nil
	default:
		return fmt.Sprintf("%s://%s/%d", scheme, authority, db), nil
	}
}

// Ping checks that c serves commands: PING, and on a Cluster client PING on
// every master. Without a deadline on ctx it gives up after 5 s. Connect
// pings with it.
func Ping(ctx context.Context, c redis.UniversalClient) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		// One seed answering PING says little about a cluster; pinging every
		// master also proves the slot map could be loaded and each is reachable.
		if err := cc.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.Ping(ctx).Err()
		})
	}
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

type kind int

const (
	kindSingle kind = iota
	kindCluster
	kindSentinel
)

// target is a parsed redis.url, from which both the go-redis client and the
// Asynq option are built so the two can never disagree.
type target struct {
	kind     kind
	addrs    []string // host:port; one for kindSingle, seeds or sentinels otherwise
	username string
	password string
	db       int
	master   string // kindSentinel only
	tls      *tls.Config
}

func parseURL(raw string) (target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return target{}, fmt.Errorf("missing scheme (want redis://, rediss://, redis-cluster:// or redis-sentinel://)")
	}
	var tg target
	defaultPort := "6379"
	switch scheme {
	case "redis", "rediss":
		tg.kind = kindSingle
	case "redis-cluster":
		tg.kind = kindCluster
	case "redis-sentinel":
		tg.kind = kindSentinel
		defaultPort = "26379"
	default:
		return target{}, fmt.Errorf("unsupported scheme %q (want redis, rediss, redis-cluster or redis-sentinel)", scheme)
	}
	authority, tail := redisurl.SplitAuthority(rest)
	hosts := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		var err error
		tg.username, tg.password, err = parseUserinfo(authority[:at], tg.kind == kindSentinel)
		if err != nil {
			return target{}, err
		}
		hosts = authority[at+1:]
	}

	for _, h := range strings.Split(hosts, ",") {
		addr, err := hostPort(h, defaultPort, tg.kind == kindSingle)
		if err != nil {
			return target{}, err
		}
		tg.addrs = append(tg.addrs, addr)
	}
	if tg.kind == kindSingle && len(tg.addrs) > 1 {
		return target{}, fmt.Errorf("several hosts need redis-cluster:// or redis-sentinel://")
	}

	path, query, _ := strings.Cut(tail, "?")
	if query != "" || strings.Contains(tail, "#") {
		return target{}, fmt.Errorf("query parameters and fragments are not supported")
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if segs[0] == "" {
		segs = nil
	}
	var dbSeg string
	switch tg.kind {
	case kindSingle, kindCluster:
		if len(segs) > 1 {
			return target{}, fmt.Errorf("path %q: want /db", path)
		}
		if len(segs) == 1 {
			dbSeg = segs[0]
		}
	case kindSentinel:
		if len(segs) < 1 || len(segs) > 2 {
			return target{}, fmt.Errorf("path %q: want /master or /master/db", path)
		}
		tg.master = segs[0]
		if len(segs) == 2 {
			dbSeg = segs[1]
		}
	}
	if dbSeg != "" {
		db, err := strconv.Atoi(dbSeg)
		if err != nil || db < 0 {
			return target{}, fmt.Errorf("invalid db %q", dbSeg)
		}
		tg.db = db
	}
	if tg.kind == kindCluster && tg.db != 0 {
		return target{}, fmt.Errorf("redis cluster has only db 0, not %d", tg.db)
	}
	if scheme == "rediss" {
		host, _, _ := net.SplitHostPort(tg.addrs[0])
		tg.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	return tg, nil
}

// parseUserinfo splits "user:pass" (percent-decoded). A userinfo without a
// colon is a password for sentinel URLs (contract §3 writes "pass@") and a
// username otherwise, as in go-redis.
func parseUserinfo(s string, bareIsPassword bool) (user, pass string, err error) {
	u, p, hasPass := strings.Cut(s, ":")
	if user, err = url.PathUnescape(u); err != nil {
		return "", "", fmt.Errorf("invalid username escape")
	}
	if pass, err = url.PathUnescape(p); err != nil {
		return "", "", fmt.Errorf("invalid password escape")
	}
	if !hasPass && bareIsPassword {
		return "", user, nil
	}
	return user, pass, nil
}

// hostPort adds the default port to h when it has none. An empty host means
// localhost only for the single-server form, where it is a common shorthand.
func hostPort(h, defaultPort string, emptyIsLocal bool) (string, error) {
	if h == "" {
		if !emptyIsLocal {
			return "", fmt.Errorf("empty host in list")
		}
		h = "localhost"
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: a bare name, or a bracketed IPv6 address.
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defaultPort
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
			return "", fmt.Errorf("invalid host %q", h)
		}
	}
	if host == "" {
		return "", fmt.Errorf("invalid host %q", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("invalid port in %q", h)
	}
	return net.JoinHostPort(host, port), nil
}

func (tg target) client() redis.UniversalClient {
	switch tg.kind {
	case kindCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: tg.addrs, Username: tg.username, Password: tg.password, TLSConfig: tg.tls,
		})
	case kindSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: tg.master, SentinelAddrs: tg.addrs,
			Username: tg.username, Password: tg.password, DB: tg.db, TLSConfig: tg.tls,
		})
	default:
		return redis.NewClient(&redis.Options{
			Addr: tg.addrs[0], Username: tg.username, Password: tg.password, DB: tg.db, TLSConfig: tg.tls,
		})
	}
}

func (tg target) asynqOpt() asynq.RedisConnOpt {
	switch tg.kind {
	case kindCluster:
		return asynq.RedisClusterClientOpt{
			Addrs: tg.addrs, Username: tg.username, Password: tg.password, TLSConfig: tg.tls,
		}
	case kindSentinel:
		return asynq.RedisFailoverClientOpt{
			MasterName: tg.master, SentinelAddrs: tg.addrs,
			Username: tg.username, Password: tg.password, DB: tg.db, TLSConfig: tg.tls,
		}
	default:
		return asynq.RedisClientOpt{
			Addr: tg.addrs[0], Username: tg.username, Password: tg.password, DB: tg.db, TLSConfig: tg.tls,
		}
	}
}

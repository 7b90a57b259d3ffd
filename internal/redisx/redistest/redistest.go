// Package redistest provides the Redis test harness (contract §9): ForTest
// finds or starts a Redis and leases each test its own database,
// MainWithRedis stops what ForTest started, StartServer starts a dedicated
// redis-server a fault test may stop and restart, and AllKeys lists keys
// across a Cluster. It is kept apart from package redisx, like
// net/http/httptest, so that production binaries do not link package testing.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/redisurl"
	"github.com/visitflow/visitflow/internal/redisx"
)

// TestURLEnv names the variable that points the test harness at an existing
// Redis (any form redisx.Connect accepts). The value "embedded" forces the
// in-memory miniredis even when redis-server is installed, to check that the
// suite passes on a machine that has only Go.
const TestURLEnv = "VISITFLOW_TEST_REDIS_URL"

// ForTest returns the URL of a Redis database for t, flushed and reserved for
// t until t ends. The Redis is, in this order (contract §9):
//
//  1. the one named by VISITFLOW_TEST_REDIS_URL;
//  2. a redis-server on a free loopback port, started at the first call and
//     shared by the whole test binary (go test runs packages as separate
//     binaries, in parallel, so each package gets its own server);
//  3. an embedded miniredis, with a one-line notice on stderr.
//
// Isolation: on a single server each call reserves one of the logical
// databases 1–15 with a lease key in database 0, flushes it and returns a
// URL selecting it; the lease is released by t.Cleanup. Parallel tests and,
// against a shared VISITFLOW_TEST_REDIS_URL, parallel test binaries
// therefore never share a database. At most 15 databases are in use at once
// per server (further calls wait up to 2 minutes, then fail t), and the
// harness owns databases 0–15 of the server it is given: never point it at
// data you care about.
//
// A Redis Cluster has only database 0, which every test shares: there the
// isolation is the namespace (redis.namespace), and a test must run
// visitflow in one from Namespace. testenv does; a test that gives
// ForTest's URL to visitflow directly sets VISITFLOW_REDIS_NAMESPACE.
//
// Call MainWithRedis from TestMain so the started server stops with the test
// binary; without it the server still dies when the binary exits.
func ForTest(t testing.TB) string {
	t.Helper()
	h, err := sharedHarness()
	if err != nil {
		t.Fatalf("redistest.ForTest: %v", err)
	}
	if h.cluster {
		return h.base // shared: tests keep apart by namespace
	}
	url, release, err := h.lease(context.Background())
	if err != nil {
		t.Fatalf("redistest.ForTest: %v", err)
	}
	t.Cleanup(release)
	return url
}

// Namespace returns a redis.namespace for t alone: unique across the test
// binaries sharing a Redis (random), and naming the test for whoever looks
// at the keys. On a shared Cluster it is what keeps tests apart (ForTest).
func Namespace(t testing.TB) string {
	t.Helper()
	tok := make([]byte, 6)
	rand.Read(tok)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return "t" + hex.EncodeToString(tok) + "-" + name
}

// MainWithRedis runs the tests and then stops the Redis that ForTest started
// for this test binary, returning m.Run's exit code. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }
func MainWithRedis(m *testing.M) int {
	code := m.Run()
	harnessMu.Lock()
	h := harness
	harness = nil
	harnessMu.Unlock()
	if h != nil {
		h.close()
	}
	return code
}

// StartServer starts a dedicated redis-server for a test that needs to stop,
// kill or restart Redis (fault tests), and stops it when t ends. Extra args go
// to redis-server: a config file first if any (a Sentinel needs one), then
// options ("--requirepass", "pw"; "--cluster-enabled", "yes" makes a cluster
// node with its own bus port). Such tests cannot run on miniredis: without
// redis-server on PATH they fail in CI (CI set; .ci/run installs it) and are
// skipped, saying so, on a machine that has only Go (contract §9: go test
// ./... passes there).
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		const msg = "redistest.StartServer: redis-server is not on PATH; install it (e.g. apt-get install redis-server)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; skipping this test, which needs a real server it can stop")
	}
	s, err := newServer(t.TempDir(), false, args...)
	if err != nil {
		t.Fatalf("redistest.StartServer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("redistest.StartServer cleanup: %v", err)
		}
	})
	return s
}

// The harness is package state on purpose: there is one per test binary, it
// must outlive the tests that use it, and MainWithRedis needs to find it.
var (
	harnessMu sync.Mutex
	harness   *testHarness
)

type testHarness struct {
	base    string                // the server, as a URL that redisx.Connect accepts
	cluster bool                  // base is a redis-cluster:// URL: database 0, shared
	admin   redis.UniversalClient // database 0: lease keys
	server  *Server               // when the harness started redis-server
	mini    *miniredis.Miniredis  // when it fell back to miniredis
	slots   []int                 // databases handed out
	next    int                   // where the next search for a free slot starts
}

const (
	leasePrefix = "visitflow:test:lease:"
	leaseTTL    = 2 * time.Minute // a crashed binary's leases expire after this
	leaseWait   = 2 * time.Minute
)

func sharedHarness() (*testHarness, error) {
	harnessMu.Lock()
	defer harnessMu.Unlock()
	if harness != nil {
		return harness, nil
	}
	h, err := newHarness()
	if err != nil {
		return nil, err
	}
	harness = h
	return h, nil
}

func newHarness() (*testHarness, error) {
	h := &testHarness{}
	switch env := os.Getenv(TestURLEnv); {
	case env != "" && env != "embedded":
		h.base = env
	case env == "" && hasRedisServer():
		dir, err := os.MkdirTemp("", "visitflow-redis-")
		if err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		if h.server, err = newServer(dir, true); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		h.base = h.server.URL()
	default:
		m, err := redisx.StartEmbedded()
		if err != nil {
			return nil, err
		}
		if env == "" {
			fmt.Fprintf(os.Stderr, "redistest: no redis-server on PATH and %s unset: tests use the embedded miniredis\n", TestURLEnv)
		}
		h.mini = m
		h.base = "redis://" + m.Addr() + "/0"
	}
	adminURL, err := redisx.URLForDB(h.base, 0)
	if err == nil {
		h.admin, err = redisx.NewClient(adminURL)
	}
	if err != nil {
		h.close()
		return nil, fmt.Errorf("%s=%s: %w", TestURLEnv, redisurl.Mask(h.base), err)
	}
	_, h.cluster = h.admin.(*redis.ClusterClient)
	if err := redisx.Ping(context.Background(), h.admin); err != nil {
		h.close()
		return nil, fmt.Errorf("connect %s: %w", redisurl.Mask(h.base), err)
	}
	h.slots = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	return h, nil
}

func hasRedisServer() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}

func (h *testHarness) close() {
	if h.admin != nil {
		h.admin.Close()
	}
	if h.server != nil {
		h.server.Stop()
		os.RemoveAll(h.server.dir)
	}
	if h.mini != nil {
		h.mini.Close()
	}
}

// Lua: KEYS[1] lease key; ARGV[1] owner token; ARGV[2] new TTL in ms, or 0
// to delete. Touches the lease only while the caller still owns it, so a
// lease that expired and was taken by another binary is left alone.
var leaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == "0" then return redis.call("DEL", KEYS[1]) end
return redis.call("PEXPIRE", KEYS[1], ARGV[2])`)

// lease reserves a free database, flushes it and returns its URL and the
// function that gives it back.
func (h *testHarness) lease(ctx context.Context) (string, func(), error) {
	tok := make([]byte, 8)
	rand.Read(tok)
	token := strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(tok)
	deadline := time.Now().Add(leaseWait)
	for {
		harnessMu.Lock()
		start := h.next
		h.next = (h.next + 1) % len(h.slots)
		harnessMu.Unlock()
		for i := range h.slots {
			db := h.slots[(start+i)%len(h.slots)]
			key := leasePrefix + strconv.Itoa(db)
			ok, err := h.admin.SetNX(ctx, key, token, leaseTTL).Result()
			if err != nil {
				return "", nil, fmt.Errorf("lease a test database on %s: %w", redisurl.Mask(h.base), err)
			}
			if !ok {
				continue
			}
			if err := h.flush(ctx, db); err != nil {
				leaseScript.Run(ctx, h.admin, []string{key}, token, 0)
				return "", nil, fmt.Errorf("flush test database %d on %s: %w", db, redisurl.Mask(h.base), err)
			}
			return h.urlFor(db), h.keepAlive(key, token), nil
		}
		if time.Now().After(deadline) {
			return "", nil, fmt.Errorf("all %d test databases on %s stayed leased for %v (too many tests holding ForTest at once?)",
				len(h.slots), redisurl.Mask(h.base), leaseWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keepAlive renews the lease while the test runs and returns its release.
func (h *testHarness) keepAlive(key, token string) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(leaseTTL / 4)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				leaseScript.Run(context.Background(), h.admin, []string{key}, token, leaseTTL.Milliseconds())
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		leaseScript.Run(ctx, h.admin, []string{key}, token, 0)
	}
}

func (h *testHarness) flush(ctx context.Context, db int) error {
	url, err := redisx.URLForDB(h.base, db)
	if err != nil {
		return err
	}
	c, err := redisx.NewClient(url)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.FlushDB(ctx).Err()
}

// urlFor rewrites the base URL to select db, keeping credentials as given.
// newHarness checked that h.base parses, so this cannot fail.
func (h *testHarness) urlFor(db int) string {
	url, _ := redisx.URLForDB(h.base, db)
	return url
}

// AllKeys lists the keys matching pattern on every master (KEYS on a
// Cluster client asks one node only), for tests that check what is stored.
func AllKeys(ctx context.Context, c redis.UniversalClient, pattern string) ([]string, error) {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return c.Keys(ctx, pattern).Result()
	}
	var (
		mu   sync.Mutex
		keys []string
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		ks, err := n.Keys(ctx, pattern).Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	})
	return keys, err
}

// StartCluster starts a Redis Cluster of masters dedicated redis-server
// processes (StartServer each, stopped when t ends), joins them with
// redis-cli --cluster create, waits until the cluster serves every slot,
// and returns its redis-cluster:// URL. Without redis-cli the test is
// skipped (or fails in CI), as StartServer does without redis-server.
func StartCluster(t testing.TB, masters int) string {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		const msg = "redistest.StartCluster: redis-cli is not on PATH (it comes with redis-server)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var addrs []string
	for i := 0; i < masters; i++ {
		addrs = append(addrs, StartServer(t, "--cluster-enabled", "yes").Addr())
	}
	out, err := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest.StartCluster: redis-cli --cluster create: %v\n%s", err, out)
	}
	url := "redis-cluster://" + strings.Join(addrs, ",")
	// The nodes need a moment to agree on the slot map, and each decides
	// for itself: ready is every node saying cluster_state:ok (one node's
	// ok left another still answering CLUSTERDOWN on a busy machine).
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := true
		for _, addr := range addrs {
			c := redis.NewClient(&redis.Options{Addr: addr})
			info, _ := c.ClusterInfo(ctx).Result()
			c.Close()
			ready = ready && strings.Contains(info, "cluster_state:ok")
		}
		if ready {
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest.StartCluster: %s not ready after 20s", url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StartSentinel starts a master protected by password and a Sentinel
// monitoring it as "vfmaster" (both stopped when t ends). It returns the
// master, for direct checks, and the Sentinel's address.
func StartSentinel(t testing.TB, password string) (master *Server, sentinelAddr string) {
	t.Helper()
	master = StartServer(t, "--requirepass", password)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	_, port, _ := strings.Cut(master.Addr(), ":")
	body := fmt.Sprintf("sentinel monitor vfmaster 127.0.0.1 %s 1\nsentinel auth-pass vfmaster %s\n", port, password)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatalf("redistest.StartSentinel: %v", err)
	}
	return master, StartServer(t, conf, "--sentinel").Addr()
}

package redistest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/redisurl"
	"github.com/visitflow/visitflow/internal/redisx"
)

func TestMain(m *testing.M) { os.Exit(MainWithRedis(m)) }

func dbOf(t *testing.T, url string) int {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("ForTest returned %q: %v", url, err)
	}
	return o.DB
}

// TestForTestIsolation runs more parallel tests than there are databases and
// checks that no two hold the same database at the same time and that each
// starts empty.
func TestForTestIsolation(t *testing.T) {
	if strings.HasPrefix(os.Getenv(TestURLEnv), "redis-cluster://") {
		t.Skip("database leases are for single servers; on a Cluster tests keep apart by Namespace (TestForTestCluster)")
	}
	var mu sync.Mutex
	held := map[int]string{}
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 25; i++ {
			name := fmt.Sprintf("t%d", i)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				url := ForTest(t)
				db := dbOf(t, url)
				if db < 1 || db > 15 {
					t.Errorf("ForTest() = %q; want a database in 1..15", url)
				}
				mu.Lock()
				if other, ok := held[db]; ok {
					t.Errorf("ForTest() gave database %d to %s while %s holds it", db, name, other)
				}
				held[db] = name
				mu.Unlock()

				c := redis.NewClient(mustOptions(t, url))
				defer c.Close()
				if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
					t.Errorf("DBSIZE of a fresh test database = %d, %v; want 0", n, err)
				}
				c.Set(ctx, "left-behind", name, 0)
				time.Sleep(30 * time.Millisecond)

				mu.Lock()
				delete(held, db)
				mu.Unlock()
			})
		}
	})
}

func mustOptions(t *testing.T, url string) *redis.Options {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis.ParseURL(%q): %v", url, err)
	}
	return o
}

func TestStartServerRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := StartServer(t)
	c, err := redisx.Connect(ctx, s.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Client.Set(ctx, "k", "v", 0)

	for _, stop := range []struct {
		name string
		fn   func() error
	}{{"Kill", s.Kill}, {"Stop", s.Stop}} {
		if err := stop.fn(); err != nil {
			t.Fatalf("%s: %v", stop.name, err)
		}
		if pingAddr(s.Addr()) == nil {
			t.Errorf("PING after %s succeeded; want an error", stop.name)
		}
		if err := s.Start(); err != nil {
			t.Fatalf("Start after %s: %v", stop.name, err)
		}
		// The same client reconnects to the same port; the data is gone.
		if err := c.Client.Ping(ctx).Err(); err != nil {
			t.Errorf("PING after %s and Start: %v", stop.name, err)
		}
		if n, _ := c.Client.Exists(ctx, "k").Result(); n != 0 {
			t.Errorf("key k survived %s and Start; want an empty server", stop.name)
		}
	}
	if err := s.Start(); err == nil {
		t.Error("Start of a running server succeeded; want an error")
	}
}

// helperEnv makes the test binary, started again by a test below, act as a
// separate test binary instead of running tests.
const helperEnv = "REDISX_TEST_HELPER"

// TestHelperProcess is not a real test: the tests below run the test binary
// with helperEnv set to see what ForTest does in a fresh process.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("helper for other tests")
	case "url":
		fmt.Println(ForTest(t))
	case "exit-without-stop":
		fmt.Println(ForTest(t))
		os.Exit(0) // skips MainWithRedis: the watchdog must stop the server
	}
}

func runHelper(t *testing.T, mode string, env ...string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + mode}, env...)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v\nstdout: %s\nstderr: %s", mode, err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

func TestForTestFallsBackToMiniredis(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		env    []string
		notice bool
	}{
		{"no redis-server", []string{"PATH=" + t.TempDir(), TestURLEnv + "="}, true},
		{"forced", []string{TestURLEnv + "=embedded"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr := runHelper(t, "url", tt.env...)
			if notice := strings.Contains(stderr, "tests use the embedded miniredis"); notice != tt.notice {
				t.Errorf("notice on stderr = %v; want %v (stderr %q)", notice, tt.notice, stderr)
			}
			if !strings.Contains(stdout, "redis://127.0.0.1:") {
				t.Errorf("helper printed %q; want a loopback redis URL", stdout)
			}
		})
	}
}

func TestForTestUsesEnvURL(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	stdout, _ := runHelper(t, "url", TestURLEnv+"="+s.URL())
	if !strings.Contains(stdout, "redis://"+s.Addr()+"/") {
		t.Errorf("helper with %s=%s printed %q; want a database on that server", TestURLEnv, s.URL(), stdout)
	}
}

func TestServerDiesWithTestBinary(t *testing.T) {
	t.Parallel()
	if !hasRedisServer() {
		t.Skip("redis-server not on PATH")
	}
	stdout, _ := runHelper(t, "exit-without-stop", TestURLEnv+"=")
	line, _ := bufio.NewReader(strings.NewReader(stdout)).ReadString('\n')
	o, err := redis.ParseURL(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper printed %q: %v", stdout, err)
	}
	addr := o.Addr
	deadline := time.Now().Add(5 * time.Second)
	for pingAddr(addr) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server at %s still answers 5s after its test binary exited", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestForTestCluster builds a three-master Redis Cluster from real
// redis-server processes and checks ForTest against it: the URL unchanged
// and nothing deleted (the one database is shared; tests keep apart by
// Namespace). Connect itself is tested on a cluster in package redisx.
func TestForTestCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	url := StartCluster(t, 3)
	ctx := context.Background()
	c, err := redisx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("Connect(%q): %v", url, err)
	}
	defer c.Close()
	if err := c.Client.Set(ctx, "another-test", "v", 0).Err(); err != nil {
		t.Fatalf("SET on the cluster: %v", err)
	}

	if stdout, _ := runHelper(t, "url", TestURLEnv+"="+url); !strings.HasPrefix(stdout, url+"\n") {
		t.Errorf("helper with %s=%s printed %q; want the cluster URL", TestURLEnv, url, stdout)
	}
	if n, err := c.Client.Exists(ctx, "another-test").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS another-test after ForTest on the cluster = %d, %v; want 1 (a shared cluster is never flushed)", n, err)
	}
}

func TestNamespaceIsPerTest(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		ns := Namespace(t)
		if seen[ns] || strings.ContainsAny(ns, "{}: /") || !strings.Contains(ns, "TestNamespaceIsPerTest") {
			t.Fatalf("Namespace() = %q (seen before: %v); want a fresh name without braces, colons or spaces, naming the test", ns, seen[ns])
		}
		seen[ns] = true
	}
}

// TestForTestSentinel starts a master and a Sentinel monitoring it and
// checks that ForTest, pointed at the Sentinel, hands out a database of the
// master through the same Sentinel URL.
func TestForTestSentinel(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a sentinel")
	}
	_, sentinelAddr := StartSentinel(t, "s3cret")
	url := "redis-sentinel://s3cret@" + sentinelAddr + "/vfmaster/2"
	stdout, _ := runHelper(t, "url", TestURLEnv+"="+url)
	if want := "redis-sentinel://s3cret@" + sentinelAddr + "/vfmaster/"; !strings.HasPrefix(stdout, want) {
		t.Errorf("helper with %s=%s printed %q; want %s<db>", TestURLEnv, redisurl.Mask(url), stdout, want)
	}
}

package redisx_test

// Tests of Connect against real servers. They are an external test package
// because they use the harness in redistest, which imports redisx.

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/redisurl"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.MainWithRedis(m)) }

func TestConnect(t *testing.T) {
	ctx := context.Background()
	secured := redistest.StartServer(t, "--requirepass", "s3cret")
	securedURL := strings.Replace(secured.URL(), "redis://", "redis://:s3cret@", 1)
	tests := []struct {
		name     string
		url      string
		embedded bool
	}{
		{"embedded", "", true},
		{"ForTest", redistest.ForTest(t), false},
		{"password", securedURL, false},
		{"user and password", strings.Replace(secured.URL(), "redis://", "redis://default:s3cret@", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redisx.Connect(ctx, tt.url)
			if err != nil {
				t.Fatalf("Connect(%q): %v", redisurl.Mask(tt.url), err)
			}
			defer c.Close()
			if c.Embedded != tt.embedded {
				t.Errorf("Connect(%q).Embedded = %v; want %v", redisurl.Mask(tt.url), c.Embedded, tt.embedded)
			}
			if strings.Contains(c.Addr, "s3cret") {
				t.Errorf("Connect(%q).Addr = %q; leaks the password", redisurl.Mask(tt.url), c.Addr)
			}
			if err := c.Client.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatalf("SET: %v", err)
			}
			// The Asynq option must reach the same database.
			other := redis.NewUniversalClient(universalOptions(t, c.Asynq))
			defer other.Close()
			if got, err := other.Get(ctx, "k").Result(); err != nil || got != "v" {
				t.Errorf("GET k through the Asynq option = %q, %v; want \"v\"", got, err)
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		bad := strings.Replace(secured.URL(), "redis://", "redis://:wr0ngpass@", 1)
		_, err := redisx.Connect(ctx, bad)
		if err == nil {
			t.Fatalf("Connect(%q) succeeded; want an auth error", redisurl.Mask(bad))
		}
		if strings.Contains(err.Error(), "wr0ngpass") || !strings.Contains(err.Error(), secured.Addr()) {
			t.Errorf("Connect error %q; want the masked URL and no password", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := redisx.Connect(ctx, "redis://127.0.0.1:1/0"); err == nil {
			t.Error("Connect(redis://127.0.0.1:1/0) succeeded; want an error")
		}
	})
	t.Run("bad url", func(t *testing.T) {
		_, err := redisx.Connect(ctx, "redis://:s3cret@h:1/x")
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "invalid db") {
			t.Errorf("Connect(bad url) error = %v; want invalid db without the password", err)
		}
	})
}

// universalOptions turns an Asynq option back into go-redis options, so a
// test can check that it points at the same place as Conn.Client.
func universalOptions(t *testing.T, opt asynq.RedisConnOpt) *redis.UniversalOptions {
	t.Helper()
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		return &redis.UniversalOptions{Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}
	case asynq.RedisClusterClientOpt:
		return &redis.UniversalOptions{Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig, IsClusterMode: true}
	case asynq.RedisFailoverClientOpt:
		return &redis.UniversalOptions{Addrs: o.SentinelAddrs, MasterName: o.MasterName, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig}
	}
	t.Fatalf("unexpected Asynq option %T", opt)
	return nil
}

// TestConnectCluster builds a three-master Redis Cluster from real
// redis-server processes and checks Connect and Asynq against it.
func TestConnectCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	url := redistest.StartCluster(t, 3)
	ctx := context.Background()
	c, err := redisx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("Connect(%q): %v", url, err)
	}
	defer c.Close()
	for i := 0; i < 20; i++ {
		k := "k" + strconv.Itoa(i)
		if err := c.Client.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s on the cluster: %v", k, err)
		}
	}
	exerciseAsynq(t, c.Asynq)
	// ForTest against a cluster is tested in package redistest.
}

// TestConnectSentinel starts a master and a Sentinel monitoring it and
// connects through the Sentinel.
func TestConnectSentinel(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a sentinel")
	}
	master, sentinelAddr := redistest.StartSentinel(t, "s3cret")
	url := "redis-sentinel://s3cret@" + sentinelAddr + "/vfmaster/2"
	c, err := redisx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("Connect(%q): %v", redisurl.Mask(url), err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Client.Set(ctx, "through-sentinel", "yes", 0).Err(); err != nil {
		t.Fatalf("SET through sentinel: %v", err)
	}
	direct := redis.NewClient(&redis.Options{Addr: master.Addr(), Password: "s3cret", DB: 2})
	defer direct.Close()
	if got, err := direct.Get(ctx, "through-sentinel").Result(); err != nil || got != "yes" {
		t.Errorf("GET on the master's db 2 = %q, %v; want \"yes\"", got, err)
	}
	exerciseAsynq(t, c.Asynq)
	// ForTest against a Sentinel is tested in package redistest.
}

package redisx

import (
	"context"
	"crypto/tls"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want asynq.RedisConnOpt
		tls  string // expected TLS server name, "" for none
	}{
		{"redis://localhost:6379/0", asynq.RedisClientOpt{Addr: "localhost:6379"}, ""},
		{"redis://10.0.0.5", asynq.RedisClientOpt{Addr: "10.0.0.5:6379"}, ""},
		{"redis:///3", asynq.RedisClientOpt{Addr: "localhost:6379", DB: 3}, ""},
		{"redis://:pw@h:1/2", asynq.RedisClientOpt{Addr: "h:1", Password: "pw", DB: 2}, ""},
		{"redis://u:p%40ss:w@h:1/", asynq.RedisClientOpt{Addr: "h:1", Username: "u", Password: "p@ss:w"}, ""},
		{"redis://u:p@ss/w@h:1/4", asynq.RedisClientOpt{Addr: "h:1", Username: "u", Password: "p@ss/w", DB: 4}, ""},
		{"redis://[::1]:7000/1", asynq.RedisClientOpt{Addr: "[::1]:7000", DB: 1}, ""},
		{"redis://[::1]/1", asynq.RedisClientOpt{Addr: "[::1]:6379", DB: 1}, ""},
		{"rediss://u:p@cache.example.com:6380/1", asynq.RedisClientOpt{Addr: "cache.example.com:6380", Username: "u", Password: "p", DB: 1}, "cache.example.com"},
		{"redis-cluster://h1:7000,h2:7001,h3", asynq.RedisClusterClientOpt{Addrs: []string{"h1:7000", "h2:7001", "h3:6379"}}, ""},
		{"redis-cluster://u:p@h1:7000,h2:7001/", asynq.RedisClusterClientOpt{Addrs: []string{"h1:7000", "h2:7001"}, Username: "u", Password: "p"}, ""},
		{"redis-cluster://h1:7000/0", asynq.RedisClusterClientOpt{Addrs: []string{"h1:7000"}}, ""},
		{"redis-sentinel://s1:26379,s2:26380/mymaster/2", asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26380"}, DB: 2}, ""},
		{"redis-sentinel://secret@s1,s2/mymaster", asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}, Password: "secret"}, ""},
		{"redis-sentinel://u:secret@s1/m/1", asynq.RedisFailoverClientOpt{MasterName: "m", SentinelAddrs: []string{"s1:26379"}, Username: "u", Password: "secret", DB: 1}, ""},
	}
	for _, tt := range tests {
		tg, err := parseURL(tt.url)
		if err != nil {
			t.Errorf("parseURL(%q) error: %v", tt.url, err)
			continue
		}
		got := tg.asynqOpt()
		var gotTLS *tls.Config
		switch o := got.(type) {
		case asynq.RedisClientOpt:
			gotTLS, o.TLSConfig = o.TLSConfig, nil
			got = o
		case asynq.RedisClusterClientOpt:
			gotTLS, o.TLSConfig = o.TLSConfig, nil
			got = o
		case asynq.RedisFailoverClientOpt:
			gotTLS, o.TLSConfig = o.TLSConfig, nil
			got = o
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseURL(%q).asynqOpt() = %#v; want %#v", tt.url, got, tt.want)
		}
		switch {
		case tt.tls == "" && gotTLS != nil:
			t.Errorf("parseURL(%q): TLS config set; want none", tt.url)
		case tt.tls != "" && (gotTLS == nil || gotTLS.ServerName != tt.tls):
			t.Errorf("parseURL(%q): TLS config %+v; want ServerName %q", tt.url, gotTLS, tt.tls)
		}
		// The go-redis client must be the matching kind.
		c := tg.client()
		var ok bool
		switch tt.want.(type) {
		case asynq.RedisClusterClientOpt:
			_, ok = c.(*redis.ClusterClient)
		default:
			_, ok = c.(*redis.Client)
		}
		if !ok {
			t.Errorf("parseURL(%q).client() is a %T; want the kind matching %T", tt.url, c, tt.want)
		}
		c.Close()
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct{ url, want string }{
		{"localhost:6379", "missing scheme"},
		{"http://h:1", "unsupported scheme"},
		{"redis://h1:1,h2:2", "several hosts"},
		{"redis://h:1/x", `invalid db "x"`},
		{"redis://h:1/-1", `invalid db "-1"`},
		{"redis://h:1/0/1", "want /db"},
		{"redis://h:99999", "invalid port"},
		{"redis://h:1/0?dial_timeout=1s", "query parameters"},
		{"redis-cluster://h1:1,,h2:2", "empty host"},
		{"redis-cluster://h1:1/3", "only db 0"},
		{"redis-sentinel://s1:1", "want /master"},
		{"redis-sentinel://s1:1/m/x", `invalid db "x"`},
		{"redis-sentinel://s1:1/m/1/2", "want /master"},
		{"redis://u:%zz@h:1", "invalid password escape"},
	}
	for _, tt := range tests {
		_, err := parseURL(tt.url)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseURL(%q) error = %v; want it to mention %q", tt.url, err, tt.want)
		}
	}
}

func TestEmbeddedExpiresKeys(t *testing.T) {
	ctx := context.Background()
	c, err := Connect(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Client.Set(ctx, "short", "x", 100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n, err := c.Client.Exists(ctx, "short").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS short after its TTL = %d, %v; want 0 (embedded Redis must expire keys by the clock)", n, err)
	}
}

func TestURLForDB(t *testing.T) {
	tests := []struct {
		url  string
		db   int
		want string
	}{
		{"redis://localhost:6379", 3, "redis://localhost:6379/3"},
		{"redis://u:p@ss/w@h:1/4", 0, "redis://u:p@ss/w@h:1/0"},
		{"rediss://:pw@h:1/2", 5, "rediss://:pw@h:1/5"},
		{"redis-cluster://h1:1,h2:2/0", 0, "redis-cluster://h1:1,h2:2/0"},
		{"redis-sentinel://pw@s1,s2/m/2", 7, "redis-sentinel://pw@s1,s2/m/7"},
		{"redis-sentinel://u:pw@s1/m", 1, "redis-sentinel://u:pw@s1/m/1"},
	}
	for _, tt := range tests {
		if got, err := URLForDB(tt.url, tt.db); err != nil || got != tt.want {
			t.Errorf("URLForDB(%q, %d) = %q, %v; want %q", tt.url, tt.db, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		url string
		db  int
	}{{"redis-cluster://h1:1", 1}, {"redis://h:1", -1}, {"redis://h:1/x", 0}, {"", 0}} {
		if got, err := URLForDB(tt.url, tt.db); err == nil {
			t.Errorf("URLForDB(%q, %d) = %q; want an error", tt.url, tt.db, got)
		}
	}
}

package handlers_test

import (
	"context"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// allKeys returns the keys matching pattern on every master: on a Redis
// Cluster, KEYS on the client reaches one node only, and a test that checks
// what is NOT stored would silently look at a third of the data.
func allKeys(t *testing.T, c redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		keys, err := c.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	var mu sync.Mutex
	var keys []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		ks, err := m.Keys(ctx, pattern).Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

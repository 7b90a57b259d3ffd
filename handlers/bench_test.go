package handlers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

// BenchmarkWebhookPath measures signed participant callbacks through the
// whole HTTP stack onto real Redis, from many concurrent senders, next to a
// bare handler that only answers 204 measured the same way in the same run.
// It reports callbacks/s and p50/p99 latency:
//
//	go test ./handlers -run '^$' -bench WebhookPath -benchtime 20000x
func BenchmarkWebhookPath(b *testing.B) {
	const visits = 200
	e := newEnv(b, redisx.ForTest(b))
	for i := 0; i < visits; i++ {
		e.createVisit(fmt.Sprintf("B-%d", i))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}

	b.Run("visitflow", func(b *testing.B) {
		var n atomic.Int64
		runSenders(b, client, func() (string, url.Values) {
			i := n.Add(1)
			id := fmt.Sprintf("B-%d", i%visits)
			path := "/twilio/video/status?visit=" + id
			who := "pat-8812"
			if i%2 == 0 {
				who = "dr-lee"
			}
			p := join(fmt.Sprintf("PA%032d", i), who, int(i%50)).params("visit-" + id)
			return e.url + path, p
		}, func(u string, p url.Values) string { return twiliosig.Sign(authToken, u, p) })
	})

	b.Run("bare204", func(b *testing.B) {
		bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			w.WriteHeader(http.StatusNoContent)
		}))
		defer bare.Close()
		var n atomic.Int64
		runSenders(b, client, func() (string, url.Values) {
			i := n.Add(1)
			return bare.URL + "/twilio/video/status?visit=B-1", join(fmt.Sprintf("PA%032d", i), "pat-8812", 0).params("visit-B-1")
		}, func(u string, p url.Values) string { return twiliosig.Sign(authToken, u, p) })
	})
}

// runSenders posts b.N callbacks from 32 goroutines per core and reports
// throughput and latency percentiles.
func runSenders(b *testing.B, client *http.Client, next func() (string, url.Values), sign func(string, url.Values) string) {
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var failures atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			u, p := next()
			req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(p.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set(twiliosig.Header, sign(u, p))
			t := time.Now()
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusNoContent {
				if failures.Add(1) == 1 {
					b.Logf("first failure: %v %v", err, resp)
				}
				if resp != nil {
					resp.Body.Close()
				}
				continue
			}
			resp.Body.Close()
			local = append(local, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d callbacks failed", f)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "callbacks/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

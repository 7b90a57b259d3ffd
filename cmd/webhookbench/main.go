// Command webhookbench measures the webhook hot path side by side, in one
// run, on one machine (docs/benchmarks.md, "Webhook path: three servers"):
//
//   - bare: a Go handler that parses the form and answers 204 (the ceiling);
//   - visitflow: its real HTTP edge, engine and Asynq workers on real Redis,
//     wired as `visitflow serve` wires them;
//   - express: Express + twilio.webhook() (signature validation only, no
//     state), the Node peer in internal/loadgen/expresspeer.
//
// Each server runs in a process of its own; one load generator (this
// process) drives them in turn with the same realistic visits: every visit
// receives loadgen.RealisticVisit's seven signed callbacks, in order, from one
// of -conns connections. For visitflow it also measures a large visit
// (loadgen.LargeVisit: 100 guest connections) and the latency at half of its
// own maximum rate, counts Redis commands per callback (INFO commandstats),
// and writes a CPU profile of its process during the realistic run.
//
// Usage (from the repository root; the Node peer needs `npm ci` once):
//
//	(cd internal/loadgen/expresspeer && npm ci)
//	go run ./cmd/webhookbench -visits 3000 -rounds 3 -cpuprofile /tmp/visitflow.pprof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/workflows"
)

func main() {
	if name := os.Getenv(childEnv); name != "" {
		if err := serveChild(name); err != nil {
			fmt.Fprintln(os.Stderr, "webhookbench", name+":", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhookbench:", err)
		os.Exit(1)
	}
}

type options struct {
	redisURL    string
	visits      int
	conns       int
	rounds      int
	largeVisits int
	guests      int
	warmup      int
	express     string
	cpuprofile  string
	logDir      string
	before      string
	netHTTP     bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("webhookbench", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.redisURL, "redis", "", "Redis URL for visitflow (default: start a redis-server of its own on a free port)")
	fs.IntVar(&o.visits, "visits", 3000, "realistic visits per measured run (7 callbacks each)")
	fs.IntVar(&o.conns, "conns", 32, "connections of the load generator (concurrent senders)")
	fs.IntVar(&o.rounds, "rounds", 1, "rounds of bare, express, visitflow; the summary gives the median round")
	fs.IntVar(&o.largeVisits, "large-visits", 64, "visits of the large-visit run (0 skips it)")
	fs.IntVar(&o.guests, "guests", 100, "guest connections per large visit")
	fs.IntVar(&o.warmup, "warmup", 300, "realistic visits sent to each server before measuring")
	fs.StringVar(&o.express, "express", "internal/loadgen/expresspeer", "directory of the Node peer ('' skips it)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of visitflow's process during its first realistic run here")
	fs.StringVar(&o.logDir, "logs", os.TempDir(), "directory for the servers' logs")
	fs.StringVar(&o.before, "before", "", "a webhookbench binary built from an earlier commit: its visitflow runs too, as visitflow-before, in the same rounds (before/after in one run)")
	fs.BoolVar(&o.netHTTP, "net-http", false, "send callbacks through net/http's client, building each request in the timed run (as before 2026-12-01 evening), instead of prepared requests over the generator's own connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	redisPID := 0
	if o.redisURL == "" {
		url, pid, stop, err := startRedis()
		if err != nil {
			return err
		}
		defer stop()
		o.redisURL, redisPID = url, pid
	}
	rdb, err := redisClient(o.redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	namespace := "wb" + loadgen.NewRunID()

	logFile, err := os.CreateTemp(o.logDir, "webhookbench-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	fmt.Fprintf(out, "webhookbench: servers' logs in %s; visitflow on %s namespace %s\n", logFile.Name(), o.redisURL, namespace)

	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	bare, err := startGoServer("bare", "", "", logFile)
	if err != nil {
		return err
	}
	servers = append(servers, bare)
	vf, err := startGoServer("visitflow", o.redisURL, namespace, logFile)
	if err != nil {
		return err
	}
	servers = append(servers, vf)
	visitflows := []*server{vf}
	if o.before != "" {
		old, err := startServerBinary(o.before, "visitflow", "visitflow-before", o.redisURL, namespace+"b", logFile)
		if err != nil {
			return err
		}
		servers = append(servers, old)
		visitflows = append(visitflows, old)
	}
	var express *server
	if o.express != "" {
		if express, err = startExpress(o.express, logFile); err != nil {
			return err
		}
		servers = append(servers, express)
	}
	b := &bench{o: o, out: out, rdb: rdb, inspector: asynq.NewInspectorFromRedisClient(rdb), redisPID: redisPID}

	// Warm-up: connections open, Node's JIT and Go's heap at their working size.
	for _, s := range servers {
		if o.warmup == 0 {
			break
		}
		if _, err := b.measure(ctx, s, loadgen.RealisticVisit, o.warmup, 0, ""); err != nil {
			return fmt.Errorf("warm-up of %s: %w", s.name, err)
		}
	}
	results := map[string][]loadgen.Report{}
	sustained := map[string][]float64{} // visitflow: callbacks/s counted until the run's jobs were done
	// The server's CPU time per callback is what the rate costs: unlike the
	// rate it does not move with what else the machine runs (much).
	cpuPer := map[string][]time.Duration{}
	for r := 0; r < o.rounds; r++ {
		for _, s := range servers {
			profile := ""
			if s == vf && r == 0 {
				profile = o.cpuprofile
			}
			rep, err := b.measure(ctx, s, loadgen.RealisticVisit, o.visits, 0, profile)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(out, "round %d  %-16s realistic  %s  %s\n", r+1, s.name, line(rep), b.cpuLine())
			results[s.name] = append(results[s.name], rep)
			sustained[s.name] = append(sustained[s.name], float64(rep.Acked)/(rep.Elapsed+b.backlog).Seconds())
			cpuPer[s.name] = append(cpuPer[s.name], b.serverCPUPerCallback(rep))
		}
	}
	median := map[string]loadgen.Report{}
	for name, reps := range results {
		sort.Slice(reps, func(i, j int) bool { return reps[i].PerSecond() < reps[j].PerSecond() })
		median[name] = reps[len(reps)/2]
	}

	large, half := map[string]loadgen.Report{}, map[string]loadgen.Report{}
	for _, vf := range visitflows {
		if o.largeVisits > 0 {
			rep, err := b.measure(ctx, vf, loadgen.LargeVisit(o.guests), o.largeVisits, 0, "")
			if err != nil {
				return fmt.Errorf("%s large visits: %w", vf.name, err)
			}
			large[vf.name] = rep
			fmt.Fprintf(out, "%s large visits (%d guests, %d callbacks each)  %s  %s\n", vf.name, o.guests, len(loadgen.LargeVisit(o.guests)), line(rep), b.cpuLine())
		}
		halfRate := median[vf.name].PerSecond() / 2
		rep, err := b.measure(ctx, vf, loadgen.RealisticVisit, o.visits/2, halfRate, "")
		if err != nil {
			return fmt.Errorf("%s half load: %w", vf.name, err)
		}
		half[vf.name] = rep
		fmt.Fprintf(out, "%s at half its max rate (%.0f/s)  %s  %s\n", vf.name, halfRate, line(rep), b.cpuLine())
	}

	fmt.Fprintf(out, "\n%d connections, %d realistic visits × %d callbacks per run, median of %d round(s):\n\n",
		o.conns, o.visits, len(loadgen.RealisticVisit), o.rounds)
	fmt.Fprintln(out, "| server | callbacks/s | p50 | p99 | server CPU per callback (median of rounds) | peak RSS (whole command) |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	rss := map[string]int64{}
	for _, s := range servers {
		rss[s.name] = peakRSS(s.cmd.Process.Pid)
	}
	for _, name := range []string{"visitflow", "visitflow-before", "bare", "express"} {
		if rep, ok := median[name]; ok {
			per := slices.Clone(cpuPer[name])
			slices.Sort(per)
			fmt.Fprintf(out, "| %s | %.0f | %s | %s | %d µs | %d MB |\n", name, rep.PerSecond(), ms(rep.P50), ms(rep.P99), per[len(per)/2].Microseconds(), rss[name]>>20)
		}
	}
	for _, vf := range visitflows {
		if rep, ok := large[vf.name]; ok {
			fmt.Fprintf(out, "| %s, large visits (%d guests) | %.0f | %s | %s |\n", vf.name, o.guests, rep.PerSecond(), ms(rep.P50), ms(rep.P99))
		}
		rep := half[vf.name]
		fmt.Fprintf(out, "| %s at half its max rate | %.0f | %s | %s |\n", vf.name, rep.PerSecond(), ms(rep.P50), ms(rep.P99))
	}
	fmt.Fprintln(out)
	for _, vf := range visitflows {
		v := median[vf.name].PerSecond()
		fmt.Fprintf(out, "%s ÷ bare %.3f", vf.name, v/median["bare"].PerSecond())
		if e, ok := median["express"]; ok {
			fmt.Fprintf(out, "   ÷ express %.2f", v/e.PerSecond())
		}
		if rep, ok := large[vf.name]; ok {
			fmt.Fprintf(out, "   large ÷ realistic %.2f", rep.PerSecond()/v)
		}
		if vs := sustained[vf.name]; len(vs) > 0 {
			sort.Float64s(vs)
			fmt.Fprintf(out, "   counted until its jobs were done (median) %.0f callbacks/s", vs[len(vs)/2])
		}
		fmt.Fprintln(out)
	}
	if b.commands != "" {
		fmt.Fprintf(out, "\nRedis commands per callback during visitflow's first realistic run (web and workers): %s\n", b.commands)
	}
	return nil
}

type bench struct {
	o         options
	out       io.Writer
	rdb       *redis.Client
	inspector *asynq.Inspector
	commands  string // Redis commands per callback, first measured visitflow run
	redisPID  int    // the redis-server this run started (0: given with -redis)
	// cpu is the CPU use (in cores) of the last measured run: the server,
	// the load generator, and (visitflow) Redis.
	cpu []float64
	// backlog is how long visitflow's workers were still busy with the
	// run's jobs after its last callback was answered.
	backlog time.Duration
}

// measure sends visits × plan to s (at rate, 0 flat out) and requires every
// callback acknowledged. visitflow's visits are created first and the jobs
// that creates drained, untimed; its own jobs are drained after the run so
// the next run starts from an idle server.
func (b *bench) measure(ctx context.Context, s *server, plan []loadgen.Step, visits int, rate float64, profile string) (loadgen.Report, error) {
	o := loadgen.Options{BaseURL: s.url, AuthToken: authToken, APIToken: apiToken, RunID: loadgen.NewRunID(),
		Visits: visits, Senders: b.o.conns, Plan: plan, Rate: rate, Wire: !b.o.netHTTP}
	isVF := s.pprof != ""
	if isVF {
		if err := loadgen.Setup(ctx, o); err != nil {
			return loadgen.Report{}, err
		}
		if err := b.drain(ctx, s.namespace); err != nil {
			return loadgen.Report{}, err
		}
	}
	var before map[string]int64
	if isVF && profile != "" {
		before = b.commandStats(ctx)
		if err := s.profile("start", profile); err != nil {
			return loadgen.Report{}, err
		}
	}
	pids := []int{s.cmd.Process.Pid, os.Getpid()}
	if isVF && b.redisPID != 0 {
		pids = append(pids, b.redisPID)
	}
	meter := meterCPU(pids...)
	rep, err := loadgen.Run(ctx, o)
	b.cpu = meter.shares(rep.Elapsed)
	if isVF && profile != "" {
		if err := s.profile("stop", ""); err != nil {
			return rep, err
		}
		b.commands = perCallback(before, b.commandStats(ctx), rep.Acked)
	}
	if err != nil {
		return rep, err
	}
	if want := visits * len(plan); rep.Acked != rep.Sent || rep.Sent != want {
		return rep, fmt.Errorf("%d of %d callbacks sent, %d acknowledged (503: %d, other: %d)", rep.Sent, want, rep.Acked, rep.Unavailable, rep.Other)
	}
	b.backlog = 0
	if isVF {
		t0 := time.Now()
		err := b.drain(ctx, s.namespace)
		b.backlog = time.Since(t0)
		return rep, err
	}
	return rep, nil
}

// drain waits until the queues of a visitflow in namespace have nothing
// pending or running.
func (b *bench) drain(ctx context.Context, namespace string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		busy := 0
		existing, err := b.inspector.Queues()
		if err != nil {
			return err
		}
		for _, q := range workflows.QueueNames(namespace) {
			if !slices.Contains(existing, q) {
				continue // no job was ever enqueued on it
			}
			info, err := b.inspector.GetQueueInfo(q)
			if err != nil {
				return err
			}
			busy += info.Pending + info.Active
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("visitflow's queues still hold %d jobs after 2 minutes", busy)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// commandStats is INFO commandstats: calls by command.
func (b *bench) commandStats(ctx context.Context) map[string]int64 {
	info, err := b.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil
	}
	stats := map[string]int64{}
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
		stats[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return stats
}

// perCallback is the commands run between before and after, per callback,
// largest first ("12.3 total: evalsha 4.0, ...").
func perCallback(before, after map[string]int64, callbacks int) string {
	if before == nil || after == nil || callbacks == 0 {
		return ""
	}
	type kv struct {
		name string
		n    int64
	}
	var diffs []kv
	var total int64
	for name, n := range after {
		if d := n - before[name]; d > 0 && name != "info" {
			diffs = append(diffs, kv{name, d})
			total += d
		}
	}
	sort.Slice(diffs, func(i, j int) bool { return diffs[i].n > diffs[j].n })
	parts := []string{fmt.Sprintf("%.1f total", float64(total)/float64(callbacks))}
	for _, d := range diffs {
		if f := float64(d.n) / float64(callbacks); f >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.2f", d.name, f))
		}
	}
	return strings.Join(parts, ", ")
}

// cpuLine is the last run's CPU use: server, load generator, Redis.
// serverCPUPerCallback is the server's CPU time in the last measured run
// divided by the callbacks it answered.
func (b *bench) serverCPUPerCallback(rep loadgen.Report) time.Duration {
	if len(b.cpu) == 0 || rep.Acked == 0 {
		return 0
	}
	return time.Duration(b.cpu[0] * float64(rep.Elapsed) / float64(rep.Acked))
}

func (b *bench) cpuLine() string {
	names := []string{"server", "loadgen", "redis"}
	var parts []string
	for i, c := range b.cpu {
		parts = append(parts, fmt.Sprintf("%s %.2f", names[i], c))
	}
	s := "CPU (cores): " + strings.Join(parts, " ")
	if b.backlog > 0 {
		s += fmt.Sprintf("; jobs done %s after the last callback", b.backlog.Round(time.Millisecond))
	}
	return s
}

func line(r loadgen.Report) string {
	return fmt.Sprintf("%6.0f callbacks/s  p50 %s  p99 %s  (%d in %s)", r.PerSecond(), ms(r.P50), ms(r.P99), r.Acked, r.Elapsed.Round(time.Millisecond))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func redisClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// startRedis starts a redis-server of its own (no persistence) on a free
// loopback port.
func startRedis() (string, int, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("start redis-server (or pass -redis): %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	rdb, _ := redisClient(url)
	defer rdb.Close()
	for i := 0; ; i++ {
		if rdb.Ping(context.Background()).Err() == nil {
			return url, cmd.Process.Pid, stop, nil
		}
		if i == 100 {
			stop()
			return "", 0, nil, errors.New("redis-server did not answer within 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

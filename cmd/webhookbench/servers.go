package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/gcpace"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/workflows"
)

// Each server runs in a process of its own, as in production: the load
// generator's goroutines, allocations and GC stay out of the servers' and a
// profile of visitflow's process is visitflow's alone. The Go servers are
// this binary started again with childEnv set to the server's name.
const (
	childEnv     = "WEBHOOKBENCH_SERVE"
	childRedis   = "WEBHOOKBENCH_REDIS"
	childNS      = "WEBHOOKBENCH_NAMESPACE"
	authToken    = "0123456789abcdef0123456789abcdef" // what every server validates signatures with
	apiToken     = "bench-api-token"
	listeningTag = "listening "
	pprofTag     = "pprof "
)

// serveChild runs the server named by childEnv until SIGTERM; it prints
// "listening <addr>" (and for visitflow "pprof <addr>") on stdout.
func serveChild(name string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if name == "visitflow" {
		gcpace.Set() // as serve does
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var h http.Handler
	switch name {
	case "bare":
		h = bareHandler()
	case "visitflow":
		vf, closeVF, err := visitflowHandler(ctx, "http://"+ln.Addr().String())
		if err != nil {
			return err
		}
		defer closeVF()
		h = vf
		if err := serveProfiler(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown server %q", name)
	}
	srv := newHTTPServer(h)
	fmt.Printf("%s%s\n", listeningTag, ln.Addr())
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// bareHandler is the ceiling: HTTP and the form parse, then 204.
func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.WriteHeader(http.StatusNoContent)
	})
}

// newHTTPServer has serve.go's timeouts (newHTTPServer there).
func newHTTPServer(h http.Handler) *http.Server {
	c := config.Default().HTTP
	return &http.Server{Handler: h, ReadHeaderTimeout: c.ReadHeaderTimeout, ReadTimeout: 30 * time.Second,
		WriteTimeout: c.WriteTimeout, IdleTimeout: 2 * time.Minute}
}

// visitflowHandler wires visitflow as `visitflow serve --role web,worker`
// does in sandbox mode (cmd/visitflow/serve.go): the store, Asynq client and
// inspector, the engine with metrics, real Asynq workers running the
// engine's handlers with the JobMiddleware, and handlers.NewServer with the
// Twilio emulator mounted under /sandbox as Twilio's REST API (room
// creation at setup goes there). Not wired: the scheduler's maintenance
// jobs, the visit board and the Asynq dashboard, which callbacks never touch.
func visitflowHandler(ctx context.Context, publicURL string) (http.Handler, func(), error) {
	cfg := config.Default()
	cfg.Redis.URL = os.Getenv(childRedis)
	cfg.Redis.Namespace = os.Getenv(childNS)
	cfg.HTTP.PublicBaseURL = publicURL
	cfg.Twilio.AccountSID, cfg.Twilio.AuthToken = sandbox.DefaultAccountSID, authToken
	cfg.Twilio.APIKey, cfg.Twilio.APISecret = "SKbench000000000000000000000000000", "benchsecret"
	cfg.Twilio.APIURL = publicURL + "/sandbox"
	cfg.API.Token = apiToken
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(os.Stderr), zapcore.InfoLevel))

	conn, err := redisx.Connect(ctx, cfg.Redis.URL)
	if err != nil {
		return nil, nil, err
	}
	ns := cfg.Redis.Namespace
	m := metrics.New()
	queue := asynq.NewClientFromRedisClient(conn.Client)
	inspector := asynq.NewInspectorFromRedisClient(conn.Client)
	tw, err := twilioapi.New(twilioapi.Config{AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
		APIKey: cfg.Twilio.APIKey, APISecret: cfg.Twilio.APISecret, FromNumber: cfg.Twilio.FromNumber,
		APIURL: cfg.Twilio.APIURL, Timeout: cfg.Twilio.RequestTimeout}, log)
	if err != nil {
		return nil, nil, err
	}
	engine := workflows.New(workflows.Deps{Store: store.New(conn.Client, store.WithNamespace(ns)), Queue: queue,
		Deleter: inspector, Twilio: tw, Log: log, Config: cfg, Metrics: m})
	workers := asynq.NewServerFromRedisClient(conn.Client, asynq.Config{
		Concurrency: cfg.Worker.Concurrency, Queues: workflows.Queues(ns),
		DelayedTaskCheckInterval: workflows.DelayedTaskCheckInterval,
		Logger:                   log.Named("asynq").Sugar(), IsFailure: workflows.CountsAsFailure,
	})
	mux := asynq.NewServeMux()
	mux.Use(m.JobMiddleware)
	engine.Register(mux)
	if err := workers.Start(mux); err != nil {
		return nil, nil, err
	}
	emu := sandbox.New(sandbox.Options{AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
		APIKeySID: cfg.Twilio.APIKey, APIKeySecret: cfg.Twilio.APISecret, Log: log.Named("sandbox")})
	h := handlers.NewServer(handlers.Deps{Engine: engine, Config: cfg, Log: log, Metrics: m, Sandbox: emu.Handler()})
	return h, func() {
		workers.Shutdown()
		emu.Close()
		_ = queue.Close()
		conn.Close()
	}, nil
}

// serveProfiler serves net/http/pprof and /profile/start?file=, /profile/stop
// (a CPU profile of exactly the measured run) on a port of its own.
func serveProfiler() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	var mu sync.Mutex
	var f *os.File
	mux.HandleFunc("/profile/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var err error
		if f, err = os.Create(r.URL.Query().Get("file")); err == nil {
			err = rpprof.StartCPUProfile(f)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("/profile/stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		rpprof.StopCPUProfile()
		if f != nil {
			_ = f.Close()
			f = nil
		}
	})
	fmt.Printf("%s%s\n", pprofTag, ln.Addr())
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

// server is a started server process.
type server struct {
	name      string
	namespace string // visitflow: its redis.namespace
	url       string // where requests go (and what signatures are computed over)
	pprof     string // visitflow only: its profiler's base URL
	cmd       *exec.Cmd
}

// startServer starts cmd and waits for its "listening <addr|port>" line.
func startServer(name string, cmd *exec.Cmd, logFile io.Writer) (*server, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd}
	lines := bufio.NewScanner(out)
	found := make(chan error, 1)
	go func() {
		err := errors.New("exited before listening")
		for lines.Scan() {
			line := lines.Text()
			if v, ok := strings.CutPrefix(line, pprofTag); ok {
				s.pprof = "http://" + v
			}
			if v, ok := strings.CutPrefix(line, listeningTag); ok {
				if !strings.Contains(v, ":") {
					v = "127.0.0.1:" + v // node prints the port
				}
				s.url = "http://" + v
				err = nil
				break
			}
		}
		found <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err := <-found:
		if err != nil {
			s.stop()
			return nil, fmt.Errorf("%s: %w (see its log)", name, err)
		}
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("%s: not listening after 30s", name)
	}
	return s, nil
}

func startGoServer(name, redisURL, namespace string, logFile io.Writer) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return startServerBinary(self, name, name, redisURL, namespace, logFile)
}

// startServerBinary starts the server kind (bare, visitflow) of the
// webhookbench binary at path, shown as name: this binary, or one built from
// another commit for a before/after comparison in one run.
func startServerBinary(path, kind, name, redisURL, namespace string, logFile io.Writer) (*server, error) {
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), childEnv+"="+kind, childRedis+"="+redisURL, childNS+"="+namespace,
		"GOMAXPROCS="+fmt.Sprint(runtime.NumCPU()))
	s, err := startServer(name, cmd, logFile)
	if s != nil {
		s.namespace = namespace
	}
	return s, err
}

func startExpress(dir string, logFile io.Writer) (*server, error) {
	if _, err := os.Stat(dir + "/node_modules/twilio"); err != nil {
		return nil, fmt.Errorf("express peer: %s has no node_modules/twilio: run `npm ci` there (or pass -express '')", dir)
	}
	cmd := exec.Command("node", "server.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT=0", "TWILIO_AUTH_TOKEN="+authToken, "NODE_ENV=production")
	return startServer("express", cmd, logFile)
}

func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func (s *server) profile(action, file string) error {
	resp, err := http.Post(s.pprof+"/profile/"+action+"?file="+file, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("profile %s: %s", action, b)
	}
	return nil
}

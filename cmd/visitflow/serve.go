package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/board"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/gcpace"
	"github.com/visitflow/visitflow/internal/metrics"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/workflows"
)

// sandboxFile is where a sandbox-mode server leaves its generated API token
// and admin password for `visitflow simulate` on the same machine.
const sandboxFile = ".visitflow-sandbox.json"

type sandboxSession struct {
	BaseURL       string `json:"base_url"`
	APIToken      string `json:"api_token"`
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	AuthToken     string `json:"auth_token"`
	AccountSID    string `json:"account_sid"`
}

type roles struct{ web, worker, scheduler bool }

func parseRole(s string) (roles, error) {
	switch s {
	case "all", "":
		return roles{true, true, true}, nil
	case "web":
		return roles{web: true}, nil
	case "worker":
		return roles{worker: true}, nil
	case "scheduler":
		return roles{scheduler: true}, nil
	}
	return roles{}, fmt.Errorf("--role: %q is not one of web, worker, scheduler, all", s)
}

// app is everything serve wires together; tests start it through run.
type app struct {
	cfg     config.Config
	sandbox bool
	log     *zap.Logger
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default $VISITFLOW_CONFIG, else ./config.yaml)")
	roleFlag := fs.String("role", "all", "web | worker | scheduler | all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	role, err := parseRole(*roleFlag)
	if err != nil {
		return err
	}

	// --- Configuration -------------------------------------------------
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	sandboxMode := cfg.Sandbox()
	var session sandboxSession
	if sandboxMode {
		session = enterSandbox(&cfg)
		log.Warn("SANDBOX MODE: no Twilio credentials configured; Twilio is emulated under /sandbox/ and nothing reaches real phones",
			zap.String("api_url", cfg.Twilio.APIURL))
		fmt.Fprintf(stdout, "sandbox: API token %s  admin %s:%s  (also in %s)\n",
			session.APIToken, session.AdminUser, session.AdminPassword, sandboxFile)
	}
	log.Info("effective config\n" + cfg.String())
	if gogc, fromEnv := gcpace.Set(); fromEnv {
		log.Info("garbage collector paced by the environment", zap.Int("gogc", gogc))
	} else {
		log.Info("garbage collector paced for a small, busy heap (set GOGC to change it)", zap.Int("gogc", gogc))
	}

	// --- Redis -----------------------------------------------------------
	conn, err := redisx.Connect(ctx, cfg.Redis.URL)
	if err != nil {
		return err
	}
	defer conn.Close()
	if conn.Embedded {
		log.Warn("EMBEDDED IN-MEMORY REDIS: redis.url is empty; every visit and job is lost when this process exits. Set redis.url (VISITFLOW_REDIS_URL) for anything but a try-out.",
			zap.String("addr", conn.Addr))
	} else {
		log.Info("redis connected", zap.String("addr", conn.Addr))
	}

	// --- Domain and jobs ------------------------------------------------
	m := metrics.New()
	ns := cfg.Redis.Namespace
	st := store.New(conn.Client, store.WithNamespace(ns))
	queue := asynq.NewClientFromRedisClient(conn.Client)
	inspector := asynq.NewInspectorFromRedisClient(conn.Client)
	m.WatchQueues(inspector)
	tw, err := twilioapi.New(twilioapi.Config{
		AccountSID: cfg.Twilio.AccountSID, AuthToken: cfg.Twilio.AuthToken,
		APIKey: cfg.Twilio.APIKey, APISecret: cfg.Twilio.APISecret,
		FromNumber: cfg.Twilio.FromNumber, MessagingServiceSID: cfg.Twilio.MessagingServiceSID,
		APIURL: cfg.Twilio.APIURL, Timeout: cfg.Twilio.RequestTimeout,
	}, log)
	if err != nil {
		return err
	}
	engine := workflows.New(workflows.Deps{
		Store: st, Queue: queue, Deleter: inspector, Twilio: tw, Log: log, Config: cfg, Metrics: m,
	})

	errc := make(chan error, 3)
	// stops undo what was started, last first, however serve ends: a
	// signal, a failed listen, a server error. (Returning without them
	// once left workers running with no graceful shutdown.)
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		// Requests and jobs are done: what they flushed is acknowledged
		// before Redis closes, so the sweeper has nothing to send again.
		// With Redis gone that could take a while; what is still
		// unacknowledged then is only re-sent by the sweeper, and refused.
		acked := make(chan struct{})
		go func() { engine.AwaitAcks(); close(acked) }()
		select {
		case <-acked:
		case <-time.After(cfg.HTTP.ShutdownTimeout):
			log.Warn("outbox acknowledgements still unsent at shutdown; the sweeper will re-send their entries and Asynq refuse them")
		}
		_ = queue.Close()
		log.Info("stopped")
	}()

	// --- Workers ---------------------------------------------------------
	if role.worker {
		srv := asynq.NewServerFromRedisClient(conn.Client, asynq.Config{
			Concurrency: cfg.Worker.Concurrency,
			Queues:      workflows.Queues(ns),
			// Reminders are due to the second.
			DelayedTaskCheckInterval: workflows.DelayedTaskCheckInterval,
			Logger:                   log.Named("asynq").Sugar(),
			ShutdownTimeout:          cfg.HTTP.ShutdownTimeout,
			IsFailure:                workflows.CountsAsFailure,
		})
		mux := asynq.NewServeMux()
		mux.Use(m.JobMiddleware)
		engine.Register(mux)
		if err := srv.Start(mux); err != nil {
			return fmt.Errorf("start workers: %w", err)
		}
		stops = append(stops, srv.Shutdown)
		log.Info("workers started", zap.Int("concurrency", cfg.Worker.Concurrency))
	}

	// --- Scheduler -------------------------------------------------------
	if role.scheduler {
		sched := asynq.NewSchedulerFromRedisClient(conn.Client, &asynq.SchedulerOpts{Logger: log.Named("scheduler").Sugar()})
		// Unique keeps two schedulers from enqueuing the same firing twice.
		if err := workflows.RegisterMaintenance(sched, ns, workflows.DefaultMaintenance(cfg.Twilio.ReconcileInterval), 25*time.Second); err != nil {
			return err
		}
		if _, err := sched.Register("@every 10m", asynq.NewTask(workflows.TypeOutboxSweep, []byte("full")),
			asynq.Queue(workflows.QueueName(ns, workflows.QueueLow)), asynq.Unique(9*time.Minute)); err != nil {
			return fmt.Errorf("register full outbox sweep: %w", err)
		}
		if err := sched.Start(); err != nil {
			return fmt.Errorf("start scheduler: %w", err)
		}
		stops = append(stops, sched.Shutdown)
		log.Info("scheduler started")
	}

	// --- HTTP ------------------------------------------------------------
	var httpSrv *http.Server
	if role.web {
		deps := handlers.Deps{
			Engine: engine, Config: cfg, Log: log, Metrics: m,
			Ready: func(ctx context.Context) error {
				if err := conn.Client.Ping(ctx).Err(); err != nil {
					return fmt.Errorf("redis: %w", err)
				}
				servers, err := inspector.Servers()
				if err != nil {
					return fmt.Errorf("asynq: %w", err)
				}
				// Asynq lists every server on this Redis; only workers of
				// this namespace's queues serve this deployment.
				for _, s := range servers {
					if _, ok := s.Queues[workflows.QueueName(ns, workflows.QueueCritical)]; ok {
						return nil
					}
				}
				return errors.New("no workers registered")
			},
			Dashboard: asynqmon.New(asynqmon.Options{
				RootPath:         "/admin/queues",
				RedisConnOpt:     conn.Asynq,
				ReadOnly:         cfg.Admin.ReadOnly,
				PayloadFormatter: asynqmon.PayloadFormatterFunc(workflows.RedactPayload),
				ResultFormatter:  asynqmon.ResultFormatterFunc(workflows.RedactPayload),
			}),
			Board: board.New(board.Options{Visits: engine,
				Jobs: workflows.NewJobList(inspector, workflows.QueueNames(ns)), Audit: engine,
				Location: cfg.Board.Location(), PageSize: cfg.Board.PageSize}),
		}
		if sandboxMode {
			emu := sandbox.New(sandbox.Options{
				AccountSID:             cfg.Twilio.AccountSID,
				AuthToken:              cfg.Twilio.AuthToken,
				APIKeySID:              cfg.Twilio.APIKey,
				APIKeySecret:           cfg.Twilio.APISecret,
				IncomingVoiceURL:       strings.TrimRight(cfg.HTTP.PublicBaseURL, "/") + "/twilio/voice/incoming" + workflows.VoiceOverrides,
				IncomingSMSURL:         strings.TrimRight(cfg.HTTP.PublicBaseURL, "/") + "/twilio/sms/incoming",
				IncomingVoiceStatusURL: strings.TrimRight(cfg.HTTP.PublicBaseURL, "/") + "/twilio/voice/status" + workflows.VoiceOverrides,
				Log:                    log.Named("sandbox"),
			})
			stops = append(stops, emu.Close)
			deps.Sandbox = emu.Handler()
		}
		httpSrv = newHTTPServer(cfg.HTTP, handlers.NewServer(deps))
		ln, err := net.Listen("tcp", cfg.HTTP.Addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.HTTP.Addr, err)
		}
		if sandboxMode {
			session.BaseURL = cfg.HTTP.PublicBaseURL
			writeSandboxSession(session, log)
		}
		log.Info("listening", zap.String("addr", ln.Addr().String()), zap.String("public_base_url", cfg.HTTP.PublicBaseURL))
		fmt.Fprintf(stdout, "visitflow listening on %s\n", ln.Addr())
		go func() {
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		stops = append(stops, func() {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
			defer cancel()
			if err := httpSrv.Shutdown(sctx); err != nil {
				log.Warn("http shutdown", zap.Error(err))
			}
		})
	}

	// --- Shutdown --------------------------------------------------------
	// The deferred stops run on every return: requests first, then the
	// scheduler and the workers.
	select {
	case <-ctx.Done():
	case err := <-errc:
		log.Error("http server failed; shutting down", zap.Error(err))
		return err
	}
	log.Info("shutting down: no new requests; finishing in-flight requests and jobs")
	return nil
}

// newHTTPServer is the listener's server with every timeout set: headers
// within http.read_header_timeout, the whole body within ReadTimeout, the
// whole exchange within http.write_timeout (a client that never reads its
// answer is cut off), idle keep-alive connections closed after IdleTimeout.
func newHTTPServer(c config.HTTP, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              c.Addr,
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
	}
}

// enterSandbox fills the Twilio settings with the emulator's and generates
// the API token and admin password the operator did not set.
func enterSandbox(cfg *config.Config) sandboxSession {
	if cfg.Twilio.AccountSID == "" {
		cfg.Twilio.AccountSID = sandbox.DefaultAccountSID
	}
	if cfg.Twilio.AuthToken == "" {
		cfg.Twilio.AuthToken = sandbox.DefaultAuthToken
	}
	if cfg.Twilio.APIKey == "" {
		cfg.Twilio.APIKey, cfg.Twilio.APISecret = "SKsandbox0000000000000000000000000", randomHex(16)
	}
	if cfg.Twilio.APIURL == "" {
		cfg.Twilio.APIURL = strings.TrimRight(cfg.HTTP.PublicBaseURL, "/") + "/sandbox"
	}
	if cfg.API.Token == "" {
		cfg.API.Token = randomHex(16)
	}
	if cfg.Admin.Password == "" {
		cfg.Admin.Password = randomHex(8)
	}
	return sandboxSession{APIToken: cfg.API.Token, AdminUser: cfg.Admin.Username,
		AdminPassword: cfg.Admin.Password, AuthToken: cfg.Twilio.AuthToken,
		AccountSID: cfg.Twilio.AccountSID}
}

func writeSandboxSession(s sandboxSession, log *zap.Logger) {
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(sandboxFile, b, 0o600); err != nil {
		log.Warn("could not write sandbox session file", zap.Error(err))
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("config: log.level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == "json" {
		enc = zapcore.NewJSONEncoder(encCfg)
	} else {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level)), nil
}

package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

// A listen that fails (the port is taken) once returned with the workers
// and the scheduler it had started still running, never shut down: they
// kept taking jobs in a process that was exiting. Now serve stops them.
func TestFailedListenStopsWhatWasStarted(t *testing.T) {
	t.Chdir(t.TempDir())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	redisURL := redistest.ForTest(t)
	ns := redistest.Namespace(t) // Asynq's server list is shared by every namespace of a Redis
	env := map[string]string{"VISITFLOW_HTTP_ADDR": taken.Addr().String(), "VISITFLOW_REDIS_URL": redisURL,
		"VISITFLOW_REDIS_NAMESPACE": ns}
	err = run(context.Background(), []string{"serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("serve on a taken port = %v; want the listen error", err)
	}
	conn, err := redisx.Connect(context.Background(), redisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A worker server deregisters when it shuts down; one still running
	// stays listed.
	servers, err := asynq.NewInspectorFromRedisClient(conn.Client).Servers()
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, srv := range servers {
		if _, ok := srv.Queues[workflows.QueueName(ns, workflows.QueueDefault)]; ok {
			ours++
		}
	}
	if ours != 0 {
		t.Errorf("after serve returned, %d Asynq worker server(s) of this deployment are still registered; want 0 (shut down)", ours)
	}
}

// A client that never reads its answer once held its goroutine and
// descriptor for as long as it liked (no WriteTimeout); one that trickles
// its headers is cut off by http.read_header_timeout.
func TestServerCutsOffClientsThatStall(t *testing.T) {
	c := config.Default().HTTP
	c.WriteTimeout, c.ReadHeaderTimeout = 300*time.Millisecond, 300*time.Millisecond
	writeFailed := make(chan error, 1)
	// An answer far larger than the socket buffers, as a long list or a
	// dashboard bundle is: its writes block while the client does not read.
	srv := newHTTPServer(c, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				writeFailed <- err
				return
			}
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	never, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer never.Close()
	if _, err := never.Write([]byte("GET /big HTTP/1.1\r\nHost: visitflow\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-writeFailed: // cut off: the handler's goroutine is free
	case <-time.After(testenv.WaitLimit):
		t.Fatal("the server kept writing to a client that never reads; want it cut off after http.write_timeout")
	}

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte("GET /big HTTP/1.1\r\nHost: vis")); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(testenv.WaitLimit))
	if n, err := slow.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("a client that never finished its headers: read = %d, %v; want the server to close the connection", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

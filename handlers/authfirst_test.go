package handlers_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/visitflow/visitflow/internal/testenv"
)

// countingListener counts the bytes the server reads from its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// An unauthenticated request once had up to 32 MiB of its body buffered
// before the bearer was looked at: 16 such posts took the server from 23 MB
// to 902 MB. Now credentials are checked first and the body is not read.
func TestUnauthenticatedBodiesAreNotRead(t *testing.T) {
	e := testenv.New(t)
	var read atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.Server.Config.Handler}
	go func() { _ = srv.Serve(countingListener{ln, &read}) }()
	t.Cleanup(func() { srv.Close() })

	const declared = 31 << 20
	for _, c := range []struct{ method, route, auth string }{
		{http.MethodPost, "/v1/visits", ""},
		{http.MethodPost, "/v1/visits", "Bearer wrong-token"},
		{http.MethodPost, "/v1/visits/batch", ""},
		{http.MethodPatch, "/v1/visits/V-1", "Basic ZHI6bGVl"},
	} {
		read.Store(0)
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: visitflow\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", c.method, c.route, declared)
		if c.auth != "" {
			head += "Authorization: " + c.auth + "\r\n"
		}
		if _, err := conn.Write([]byte(head + "\r\n")); err != nil {
			t.Fatal(err)
		}
		// The whole body follows, as an attacker sends it; the server
		// answers and hangs up without reading it (this write then fails).
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			chunk := []byte(strings.Repeat("[", 1<<20))
			for i := 0; i < declared>>20; i++ {
				if _, err := conn.Write(chunk); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s %s with %q: %v", c.method, c.route, c.auth, err)
		}
		resp.Body.Close()
		conn.Close()
		<-wrote
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with %q and a %d-byte body = %d; want 401", c.method, c.route, c.auth, declared, resp.StatusCode)
		}
		// What the server read: the head plus at most its read buffer.
		if n := read.Load(); n > 64<<10 {
			t.Errorf("%s %s with %q: the server read %d bytes of a %d-byte request before answering %d; want the headers only (< 64 KiB)",
				c.method, c.route, c.auth, n, declared, resp.StatusCode)
		}
	}
}

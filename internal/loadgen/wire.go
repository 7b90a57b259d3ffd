package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// prepare builds the whole HTTP request of every callback of the run, by
// visit and position, so the timed run only writes bytes and reads answers.
// Servers receive what net/http's client would send them: the same
// request line, form, signature and idempotency token.
func (o Options) prepare() ([][][]byte, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || u.Host == "" || u.Scheme != "http" {
		return nil, fmt.Errorf("loadgen: wire needs an http:// base URL, not %q", o.BaseURL)
	}
	prefix := strings.TrimRight(u.Path, "/")
	out := make([][][]byte, o.Visits)
	for n := range out {
		cs := o.callbacks(n)
		out[n] = make([][]byte, len(cs))
		for i, c := range cs {
			r := o.signed(c)
			var b strings.Builder
			fmt.Fprintf(&b, "POST %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: visitflow-loadgen\r\n"+
				"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n"+
				"X-Twilio-Signature: %s\r\nI-Twilio-Idempotency-Token: %s\r\n\r\n%s",
				prefix, r.path, u.Host, len(r.body), r.signature, r.token, r.body)
			out[n][i] = []byte(b.String())
		}
	}
	return out, nil
}

// wireConn is one sender's keep-alive connection: a request is one write,
// its answer read with http.ReadResponse. After any failure, or an answer
// that closes the connection, the next request dials again.
type wireConn struct {
	addr string
	conn net.Conn
	rd   *bufio.Reader
}

func newWireConn(baseURL string) *wireConn {
	u, _ := url.Parse(baseURL) // prepare has checked it
	return &wireConn{addr: u.Host}
}

// post sends one prepared request and returns the answer's status, 0 when
// there was none (as Client.Do failing).
func (w *wireConn) post(ctx context.Context, req []byte) int {
	if w.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", w.addr)
		if err != nil {
			return 0
		}
		w.conn, w.rd = c, bufio.NewReaderSize(c, 4096)
	}
	w.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.conn.Write(req); err != nil {
		w.close()
		return 0
	}
	resp, err := http.ReadResponse(w.rd, nil)
	if err != nil {
		w.close()
		return 0
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		w.close()
	}
	return resp.StatusCode
}

func (w *wireConn) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn, w.rd = nil, nil
	}
}

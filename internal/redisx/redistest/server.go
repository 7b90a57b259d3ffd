//go:build unix

package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a redis-server process on a loopback port, without persistence.
// Tests use it (through StartServer) when they need a real Redis they can
// stop, kill and start again on the same port.
type Server struct {
	bin   string
	dir   string
	port  int
	args  []string
	rmDir bool // remove dir when the process is gone (the per-binary server)

	mu   sync.Mutex
	proc *process
}

// process is one run of redis-server under a small sh watchdog. The watchdog
// reads from a pipe whose write end only this Go process holds: when the test
// binary exits for any reason (a panic, a test timeout, SIGKILL) the pipe
// closes and the watchdog kills redis-server, so no server outlives its test
// binary even when nothing called Stop.
type process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   int           // redis-server itself, for Kill
	done  chan struct{} // closed when redis-server has exited
}

const watchdog = `exec 3<&0
"$0" "$@" </dev/null >>"$VF_LOG" 2>&1 &
pid=$!
echo "$pid"
( read _ <&3; kill -TERM "$pid" 2>/dev/null
  if [ -n "$VF_RMDIR" ]; then while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; rm -rf "$VF_RMDIR"; fi
) </dev/null >/dev/null 2>&1 &
wait "$pid"
`

// newServer starts redis-server with its working directory dir on a free
// loopback port. Extra args are appended to the command line (a first arg
// not starting with "-" is a config file and goes first); with
// "--cluster-enabled yes" the cluster bus gets its own free port and the
// node file lives in dir, so a restarted node rejoins its cluster.
func newServer(dir string, rmDir bool, args ...string) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redistest: start redis-server: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("redistest: start redis-server: %w", err)
	}
	s := &Server{bin: bin, dir: dir, port: port, rmDir: rmDir}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		// redis-server takes a config file (needed for --sentinel) only first.
		s.args, args = args[:1], args[1:]
	}
	s.args = append(s.args,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", "",
	)
	for i, a := range args {
		if a == "--cluster-enabled" && i+1 < len(args) && args[i+1] == "yes" {
			bus, err := freePort()
			if err != nil {
				return nil, fmt.Errorf("redistest: start redis-server: %w", err)
			}
			s.args = append(s.args, "--cluster-port", strconv.Itoa(bus),
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"))
		}
	}
	s.args = append(s.args, args...)
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// URL returns redis://127.0.0.1:PORT/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr returns 127.0.0.1:PORT.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Start starts the server on its port and waits until it answers PING. It
// fails when the server is running, when redis-server exits early (the port
// was taken meanwhile, a bad argument; the error quotes its log) or when it
// does not answer within 10 s. Data from an earlier run is gone unless the
// server was started with persistence options ("--appendonly", "yes"): by
// default it keeps nothing on disk.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		select {
		case <-s.proc.done:
		default:
			return fmt.Errorf("redistest: start redis-server %s: already running", s.Addr())
		}
	}
	logPath := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command("sh", append([]string{"-c", watchdog, s.bin}, s.args...)...)
	cmd.Env = append(os.Environ(), "VF_LOG="+logPath)
	if s.rmDir {
		cmd.Env = append(cmd.Env, "VF_RMDIR="+s.dir)
	}
	// Own process group, so a ^C reaches only the test binary: were the
	// watchdog killed by it, redis-server (a background job of sh, which
	// ignores SIGINT) would outlive everything. The binary's exit closes the
	// pipe and the watchdog does the rest.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("redistest: start redis-server %s: %w", s.Addr(), err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("redistest: start redis-server %s: %w", s.Addr(), err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server %s: %w", s.Addr(), err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		stdin.Close()
		cmd.Wait()
		return fmt.Errorf("redistest: start redis-server %s: watchdog did not report a pid (%q)", s.Addr(), line)
	}
	p := &process{cmd: cmd, stdin: stdin, pid: pid, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		stdin.Close() // lets the watchdog subshell exit too
		close(p.done)
	}()
	s.proc = p

	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingAddr(s.Addr()) == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("redistest: start redis-server %s: exited: %s", s.Addr(), tail(logPath))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stopLocked(syscall.SIGKILL)
			return fmt.Errorf("redistest: start redis-server %s: no answer after 10s: %s", s.Addr(), tail(logPath))
		}
	}
}

// Stop shuts the server down (SIGTERM) and waits for it to exit. Stopping a
// stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGTERM)
}

// Kill ends the server with SIGKILL, like a crash, and waits for it to exit.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked(syscall.SIGKILL)
}

// Pause freezes the server (SIGSTOP): its connections stay open and
// nothing answers, as when Redis stalls. Resume thaws it; Stop and Kill
// thaw it first.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return fmt.Errorf("redistest: signal redis-server %s: not running", s.Addr())
	}
	if err := syscall.Kill(s.proc.pid, sig); err != nil {
		return fmt.Errorf("redistest: signal redis-server %s: %w", s.Addr(), err)
	}
	return nil
}

func (s *Server) stopLocked(sig syscall.Signal) error {
	p := s.proc
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(p.pid, syscall.SIGCONT) // a paused server cannot act on SIGTERM
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("redistest: stop redis-server %s: %w", s.Addr(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("redistest: stop redis-server %s: did not exit within 10s of %v; killed", s.Addr(), sig)
	}
}

// pingAddr sends an inline PING, which is enough to know the server is up
// without opening a pooled client or knowing its password.
func pingAddr(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// Any answer but LOADING means the server serves commands; with
	// requirepass the answer is NOAUTH.
	if strings.HasPrefix(line, "-LOADING") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before redis-server binds it; Start then fails with the log line.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of the server log for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

//go:build !unix

package redistest

import (
	"errors"
	"sync"
)

// Server is a redis-server process; starting one needs a Unix system.
type Server struct {
	mu sync.Mutex
}

var errNoServer = errors.New("redistest: start redis-server: needs a Unix system")

func newServer(dir string, rmDir bool, args ...string) (*Server, error) { return nil, errNoServer }

// URL returns an empty string: no server can run here.
func (s *Server) URL() string { return "" }

// Addr returns an empty string: no server can run here.
func (s *Server) Addr() string { return "" }

// Start fails: no server can run here.
func (s *Server) Start() error { return errNoServer }

// Stop does nothing.
func (s *Server) Stop() error { return nil }

// Kill does nothing.
func (s *Server) Kill() error { return nil }

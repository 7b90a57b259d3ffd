// Package archtest holds the test that keeps docs/architecture.md's import
// rules true: it reads `go list -deps -json ./...` and fails on an edge the
// rules forbid. It has no code of its own.
package archtest

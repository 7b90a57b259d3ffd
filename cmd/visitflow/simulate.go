package main

import (
	"context"
	"errors"
	"io"
)

// simulate plays a whole visit against a running server (issue: sandbox).
func simulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return errors.New("simulate: not built yet")
}

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

const usage = `usage: visitflow [command] [flags]

commands:
  serve      run the service (default): --role web|worker|scheduler|all, --config PATH
  simulate   play a whole visit against a running server and print its timeline
  load       post signed callbacks for many visits against a running server; report throughput and latency
  sign       compute (and optionally post) a signed Twilio callback, for curl walk-throughs
`

// run is the whole program; main only supplies the process's world.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "simulate":
		return simulate(ctx, args, getenv, stdout, stderr)
	case "load":
		return load(ctx, args, getenv, stdout, stderr)
	case "sign":
		return sign(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

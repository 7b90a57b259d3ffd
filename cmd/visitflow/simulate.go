package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/visitflow/visitflow/internal/sandbox"
	sim "github.com/visitflow/visitflow/internal/simulate" // the command func is simulate
)

// simulate plays a whole visit against a running sandbox-mode server
// (internal/simulate does the playing): it creates the visit through the
// API, waits for its room, drives people in and out through the emulator's
// control API, follows the visit and prints its timeline. It fails (exit
// status 1) when the visit does not reach the scenario's expected end state
// before the deadline.
func simulate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "base URL of the running server (default: the sandbox session file's, else http://localhost:8080)")
	name := fs.String("scenario", "happy", "scenario to play (--list shows them)")
	token := fs.String("token", "", "API bearer token (default $VISITFLOW_API_TOKEN, else the sandbox session file's)")
	timeout := fs.Duration("timeout", 60*time.Second, "deadline for the whole scenario (default: 60s, or longer when the scenario needs it)")
	line := fs.String("interpreter-line", "voyce-es", "interpreter line the interpreter scenario requests (a line of the server's config)")
	list := fs.Bool("list", false, "list the scenarios and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *list {
		for _, sc := range sim.Scenarios() {
			fmt.Fprintf(stdout, "%-16s %s (ends %s)\n", sc.Name, sc.About, sc.Want)
		}
		return nil
	}
	sc, err := sim.Lookup(*name)
	if err != nil {
		return fmt.Errorf("simulate: --scenario: %w (try --list)", err)
	}

	timeoutSet := false
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if !timeoutSet && sc.MinTimeout > *timeout {
		*timeout = sc.MinTimeout
	}

	// A sandbox-mode server started in this directory left its URL, API
	// token and Twilio credentials in the session file; without it, assume
	// the sandbox credentials serve fills in (sandbox.DefaultAccountSID, sandbox.DefaultAuthToken).
	session := readSandboxSession()
	opts := sim.Options{
		BaseURL:         cmp.Or(*server, session.BaseURL, "http://localhost:8080"),
		Token:           cmp.Or(*token, getenv("VISITFLOW_API_TOKEN"), session.APIToken),
		AccountSID:      cmp.Or(session.AccountSID, sandbox.DefaultAccountSID),
		AuthToken:       cmp.Or(session.AuthToken, sandbox.DefaultAuthToken),
		InterpreterLine: *line,
		Out:             stdout,
		HTTP:            &http.Client{Timeout: 10 * time.Second},
	}
	if opts.Token == "" {
		return errors.New("simulate: no API token: pass --token, set VISITFLOW_API_TOKEN, or run from the directory of a sandbox-mode server (it writes " + sandboxFile + ")")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	return sim.NewPlayer(opts).Play(ctx, sc)
}

func readSandboxSession() sandboxSession {
	var s sandboxSession
	if b, err := os.ReadFile(sandboxFile); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

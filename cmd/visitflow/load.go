package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/loadgen"
	"github.com/visitflow/visitflow/internal/sandbox"
)

// load posts signed participant callbacks for many concurrent visits against
// a running server and prints throughput and latency percentiles. It creates
// its visits first through the scheduling API (not timed).
func load(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (for twilio.auth_token, api.token, http.public_base_url)")
	target := fs.String("url", "http://127.0.0.1:8080", "where to send requests")
	public := fs.String("public-url", "", "the URL signatures are computed over (default: http.public_base_url, else --url)")
	authToken := fs.String("auth-token", "", "Twilio auth token (default: twilio.auth_token, or the sandbox token)")
	apiToken := fs.String("api-token", "", "scheduling API token (default: api.token)")
	visits := fs.Int("visits", 1000, "visits to create and drive")
	senders := fs.Int("senders", 64, "concurrent senders, each working through its share of the visits")
	callbacks := fs.Int("callbacks", 8000, "total callbacks to send, spread evenly over the visits")
	rate := fs.Float64("rate", 0, "callbacks per second across all senders (0: flat out)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: visitflow load [--url URL] [--visits N] [--callbacks N] [--rate R]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath, getenv)
	if err != nil {
		return err
	}
	if *authToken == "" {
		*authToken = cfg.Twilio.AuthToken
		if cfg.Sandbox() {
			*authToken = sandbox.DefaultAuthToken
		}
	}
	if *apiToken == "" {
		*apiToken = cfg.API.Token
	}
	if *public == "" && *configPath != "" {
		*public = cfg.HTTP.PublicBaseURL
	}
	o := loadgen.Options{BaseURL: *target, PublicBaseURL: *public, AuthToken: *authToken, APIToken: *apiToken,
		Visits: *visits, Senders: *senders, Callbacks: *callbacks, Rate: *rate, RunID: loadgen.NewRunID()}
	fmt.Fprintf(stdout, "load: creating %d visits\n", *visits)
	if err := loadgen.Setup(ctx, o); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "load: sending %d callbacks for %d visits from %d senders\n", *callbacks, *visits, *senders)
	rep, err := loadgen.Run(ctx, o)
	fmt.Fprintln(stdout, rep)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	return nil
}

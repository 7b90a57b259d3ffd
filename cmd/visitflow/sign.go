package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/twiliosig"
)

// sign computes the X-Twilio-Signature of a form callback the way Twilio
// does, and with --post sends it: the README's curl walk-through uses it.
func sign(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (for twilio.auth_token)")
	rawURL := fs.String("url", "", "the full URL Twilio would call, e.g. http://localhost:8080/twilio/video/status")
	token := fs.String("token", "", "auth token to sign with (default: twilio.auth_token, or the sandbox token)")
	post := fs.Bool("post", false, "POST the signed callback and print the response status")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: visitflow sign --url URL [--post] [--token T] Name=value ...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rawURL == "" {
		fs.Usage()
		return fmt.Errorf("sign: --url is required")
	}
	params := url.Values{}
	for _, kv := range fs.Args() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("sign: %q is not Name=value", kv)
		}
		params.Add(k, v)
	}
	if *token == "" {
		cfg, err := config.Load(*configPath, getenv)
		if err != nil {
			return err
		}
		*token = cfg.Twilio.AuthToken
		if cfg.Sandbox() && getenv("TWILIO_AUTH_TOKEN") == "" && getenv("VISITFLOW_TWILIO_AUTH_TOKEN") == "" {
			*token = sandbox.DefaultAuthToken
		}
	}
	sig := twiliosig.Sign(*token, *rawURL, params)
	if !*post {
		fmt.Fprintln(stdout, sig)
		return nil
	}
	target, _, _ := strings.Cut(*rawURL, "#")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(params.Encode()))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(twiliosig.Header, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sign: post: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %s\n", resp.Status, strings.TrimSpace(string(body)))
	return nil
}

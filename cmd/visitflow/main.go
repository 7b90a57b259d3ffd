// Command visitflow runs telehealth virtual visits on Twilio: webhooks, the
// scheduling API, Asynq workers and scheduler, and the dashboard, in one
// binary split by --role. main only calls run.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // visits carry IANA zones; do not depend on the host's zoneinfo
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "visitflow:", err)
		os.Exit(1)
	}
}

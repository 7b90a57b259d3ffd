// Package gcpace sets how often the Go garbage collector runs in visitflow's
// processes.
//
// visitflow keeps a small live heap (tens of MB: the visits it lately
// touched, connection buffers) and allocates fast on the webhook path
// (request, form, the visit decoded and encoded, Redis replies). With Go's
// default GOGC=100 a collection starts each time the heap doubles, which at
// that rate is several times a second (117 collections against 29 at 400 in
// one webhook benchmark run). In three A/B runs of that benchmark GOGC=400
// cost 1, 11 and 19 % less CPU per callback (the machine is noisy;
// docs/benchmarks.md), for a heap that may grow to about five times the live
// one instead of two.
package gcpace

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// Percent is the GOGC visitflow runs at unless the environment sets one.
const Percent = 400

// Set applies Percent unless the GOGC environment variable is set (an
// operator's choice wins, GOGC=off included); it returns the GOGC in effect
// (-1 for off) and whether it came from the environment.
func Set() (percent int, fromEnv bool) {
	if os.Getenv("GOGC") != "" {
		// Read, not set and restored: the runtime parsed GOGC at start.
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64()), true
	}
	debug.SetGCPercent(Percent)
	return Percent, false
}

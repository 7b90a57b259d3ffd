package gcpace

import (
	"runtime/debug"
	"testing"
)

func TestSetPacesTheCollectorUnlessTheEnvironmentDoes(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	t.Setenv("GOGC", "")
	debug.SetGCPercent(100)
	if p, env := Set(); p != Percent || env {
		t.Errorf("Set() without GOGC = %d, %v; want %d, false", p, env, Percent)
	}
	if got := debug.SetGCPercent(100); got != Percent {
		t.Errorf("GOGC in effect = %d; want %d", got, Percent)
	}

	// The runtime read GOGC at start; an operator's value is what is in effect.
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	if p, env := Set(); p != 150 || !env {
		t.Errorf("Set() with GOGC=150 = %d, %v; want 150, true", p, env)
	}
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC in effect = %d; want the environment's 150 kept", got)
	}

	t.Setenv("GOGC", "off")
	debug.SetGCPercent(-1)
	if p, env := Set(); p != -1 || !env {
		t.Errorf("Set() with GOGC=off = %d, %v; want -1, true", p, env)
	}
}

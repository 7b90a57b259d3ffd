package main

import (
	"context"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/sandbox"
)

// TestE2EReconcileCompletesAVisitWhoseEndWasNeverCalledBack runs the whole
// server (scheduler included) with twilio.reconcile_interval=5s, as the
// acceptance checks do, and loses every callback from the moment the
// patient and provider are together: their leaving and the room's end
// reach visitflow only through reconciliation. It logs how long that took.
func TestE2EReconcileCompletesAVisitWhoseEndWasNeverCalledBack(t *testing.T) {
	s := startSandboxServerWith(t, map[string]string{"VISITFLOW_TWILIO_RECONCILE_INTERVAL": "5s"})
	v := s.createVisit("V-quiet")
	v = s.awaitVisit(v.ID, "the visit's room", func(v handlers.VisitView) bool { return v.Room.SID != "" })
	s.join(v.Room.Name, "pat-8812")
	s.join(v.Room.Name, "dr-lee")
	s.awaitVisit(v.ID, "in progress", func(v handlers.VisitView) bool { return v.State == "in_progress" })

	ctx := context.Background()
	if _, err := s.emulator().SetFaults(ctx, sandbox.Faults{DropStatusCallbacks: 1}); err != nil {
		t.Fatal(err)
	}
	s.leave(v.Room.Name, "dr-lee")
	s.leave(v.Room.Name, "pat-8812")
	if err := s.twilioClient().EndRoom(ctx, v.Room.SID); err != nil {
		t.Fatal(err)
	}
	ended := time.Now()
	done := s.awaitVisit(v.ID, "completed through reconciliation", func(v handlers.VisitView) bool { return v.State == "completed" })
	took := time.Since(ended)
	rest := 0
	for _, e := range done.Timeline {
		if e.Source == "twilio.rest" {
			rest++
		}
	}
	if rest < 3 {
		t.Fatalf("timeline %+v; want the two disconnects and the room's end from twilio.rest", done.Timeline)
	}
	t.Logf("room-ended withheld → completed in %s at reconcile_interval=5s (%d facts from twilio.rest)", took.Round(100*time.Millisecond), rest)
}

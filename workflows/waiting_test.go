package workflows_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// connectAt and disconnectAt deliver participant callbacks stamped at.
func connectAt(t *testing.T, e *workflows.Engine, id, sid, identity string, at time.Time) {
	t.Helper()
	video(t, e, workflows.VideoEvent{Event: workflows.EventParticipantConnected, RoomName: visit.RoomName(id),
		ParticipantSID: sid, ParticipantIdentity: identity, Timestamp: at})
}

func disconnectAt(t *testing.T, e *workflows.Engine, id, sid, identity string, at time.Time) {
	t.Helper()
	video(t, e, workflows.VideoEvent{Event: workflows.EventParticipantDisconnected, RoomName: visit.RoomName(id),
		ParticipantSID: sid, ParticipantIdentity: identity, Timestamp: at})
}

func video(t *testing.T, e *workflows.Engine, ev workflows.VideoEvent) {
	t.Helper()
	if _, err := e.ApplyVideo(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

func TestProviderToldPatientIsWaitingOncePerSpell(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = nil })
	env.CreateEngineVisit(visitInput("V-wait", time.Now(), "UTC"))
	t0 := time.Now().Add(-10 * time.Minute).UTC()
	connectAt(t, env.Engine, "V-wait", "PA1", "pat-1", t0)                        // transition 1: waiting
	disconnectAt(t, env.Engine, "V-wait", "PA1", "pat-1", t0.Add(10*time.Second)) // 2: interrupted
	connectAt(t, env.Engine, "V-wait", "PA2", "pat-1", t0.Add(40*time.Second))    // 3: waiting again, a reconnect
	disconnectAt(t, env.Engine, "V-wait", "PA2", "pat-1", t0.Add(time.Minute))    // 4: interrupted
	connectAt(t, env.Engine, "V-wait", "PA3", "pat-1", t0.Add(5*time.Minute))     // 5: waiting, a new spell
	env.StartWorkers(env.Engine)

	env.Eventually("two patient-waiting SMS", func() bool { return len(env.SMSTo(providerPhone)) == 2 })
	for _, m := range env.SMSTo(providerPhone) {
		if !strings.Contains(m.Body, "Sam is in the waiting room. Join: "+env.URL+"/join/") {
			t.Errorf("provider SMS = %q; want the patient_waiting text with the provider's join link", m.Body)
		}
	}
	// The reconnect 30 s after the drop never made the job.
	if _, err := env.Inspector.GetTaskInfo(env.QueueName(workflows.QueueDefault), "V-wait:"+workflows.TypePatientWaitingSMS+":t3"); err == nil {
		t.Errorf("a reconnect within a minute scheduled a second patient-waiting SMS")
	}
}

func TestPatientWaitingSMSSaysWhenThePatientIsOnThePhone(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = nil })
	env.StartWorkers(env.Engine)
	env.CreateEngineVisit(visitInput("V-phone", time.Now(), "UTC"))
	connectAt(t, env.Engine, "V-phone", "PA1", "dialin-V-phone", time.Now().UTC())
	env.Eventually("the patient-waiting SMS", func() bool { return len(env.SMSTo(providerPhone)) == 1 })
	if b := env.SMSTo(providerPhone)[0].Body; !strings.Contains(b, "Sam is in the waiting room (joined by phone).") {
		t.Errorf("provider SMS = %q; want it to say the patient joined by phone", b)
	}
}

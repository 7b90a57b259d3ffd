package workflows_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

func joinPatient(t *testing.T, e *workflows.Engine, id, sid string) {
	t.Helper()
	joinAs(t, e, id, sid, "pat-1")
}

func joinAs(t *testing.T, e *workflows.Engine, id, sid, identity string) {
	t.Helper()
	_, err := e.ApplyVideo(context.Background(), workflows.VideoEvent{Event: workflows.EventParticipantConnected,
		RoomName: visit.RoomName(id), ParticipantSID: sid, ParticipantIdentity: identity, Timestamp: time.Now().UTC()})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNoShowCheckFiresAfterDeadline(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.NoShowAfter = time.Second })
	env.StartWorkers(env.Engine)
	env.CreateEngineVisit(visitInput("V-ns", time.Now(), "UTC"))
	env.CreateEngineVisit(visitInput("V-came", time.Now(), "UTC"))
	joinPatient(t, env.Engine, "V-came", "PA1")
	env.Eventually("no-show", func() bool { return len(testenv.Entries(env.Timeline("V-ns"), "no-show")) == 1 })
	v, _, _ := env.Engine.Visit(context.Background(), "V-ns")
	if v.State() != visit.NoShow {
		t.Fatalf("state = %s; want no_show", v.State())
	}
	// The visit whose patient joined is left alone by its check.
	if err := testenv.Process(env.Engine, workflows.TypeNoShowCheck, workflows.Payload{VisitID: "V-came", Schedule: 0}); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := env.Engine.Visit(context.Background(), "V-came"); v.State() != visit.Waiting {
		t.Fatalf("state of joined visit = %s; want waiting", v.State())
	}
}

func TestProviderLateAndFollowup(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) {
		c.Visits.ProviderLateAfter = time.Second
		c.Visits.FollowupAfter = time.Second
		c.Visits.ReminderOffsets = nil
	})
	env.StartWorkers(env.Engine)
	env.CreateEngineVisit(visitInput("V-late", time.Now(), "UTC"))
	joinPatient(t, env.Engine, "V-late", "PA1")
	// The provider hears twice: the patient is waiting, then still waiting.
	env.Eventually("provider-late SMS to both", func() bool {
		return len(env.SMSTo(providerPhone)) == 2 && len(env.SMSTo(patientPhone)) == 1
	})
	if b := env.SMSTo(patientPhone)[0].Body; !strings.Contains(b, "running a few minutes late") {
		t.Errorf("patient SMS = %q; want the patient_late text", b)
	}
	if b := env.SMSTo(providerPhone)[1].Body; !strings.Contains(b, "Sam is waiting") {
		t.Errorf("provider SMS = %q; want the provider_late text", b)
	}
	joinAs(t, env.Engine, "V-late", "PA2", "dr-lee")
	if _, err := env.Engine.ApplyVideo(context.Background(), workflows.VideoEvent{Event: workflows.EventRoomEnded,
		RoomName: visit.RoomName("V-late"), Timestamp: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	env.Eventually("follow-up", func() bool { return len(env.SMSTo(patientPhone)) == 2 })
	if b := env.SMSTo(patientPhone)[1].Body; !strings.Contains(b, "Thank you") {
		t.Errorf("follow-up = %q", b)
	}
}

func TestProviderLateNotSentWhenProviderJoinedInTime(t *testing.T) {
	env := newSMSEnv(t, func(c *config.Config) { c.Visits.ReminderOffsets = nil })
	env.CreateEngineVisit(visitInput("V-ok", time.Now(), "UTC"))
	joinPatient(t, env.Engine, "V-ok", "PA1")
	joinAs(t, env.Engine, "V-ok", "PA2", "dr-lee")
	// The check made when the patient started waiting (transition 1) runs late.
	if err := testenv.Process(env.Engine, workflows.TypeProviderLateCheck, workflows.Payload{VisitID: "V-ok", Transition: 1}); err != nil {
		t.Fatal(err)
	}
	if n := len(env.SMS()); n != 0 {
		t.Fatalf("SMS = %d; want none, the provider came (no workers ran the patient-waiting SMS)", n)
	}
}

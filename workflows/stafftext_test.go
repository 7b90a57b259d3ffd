package workflows_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// Twilio's own error text once went verbatim into the timeline, the board
// and Asynq's LastErr (which the dashboard shows raw). Support staff now
// read the code in our words.
func TestTwilioFailuresReachStaffAsCodesInOurWords(t *testing.T) {
	ctx := context.Background()
	env := newSMSEnv(t)
	env.StartWorkers(env.Engine)
	in := visitInput("V-words", time.Now().Add(3*time.Hour), "UTC")
	in.Patient.Phone = "+15005550001" // the emulator answers 400 21211, as Twilio does, with its own sentence
	if _, _, err := env.Engine.CreateVisit(ctx, in); err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(workflows.Payload{VisitID: "V-words", Reminder: "r1h0m0s"})
	const id = "test:reminder:V-words"
	if _, err := env.Queue.Enqueue(asynq.NewTask(workflows.TypeReminderSend, payload), asynq.TaskID(id),
		asynq.Queue(env.QueueName(workflows.QueueCritical)), asynq.MaxRetry(0), asynq.Retention(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var info *asynq.TaskInfo
	env.Eventually("the reminder failed for good", func() bool {
		var err error
		info, err = env.Inspector.GetTaskInfo(env.QueueName(workflows.QueueCritical), id)
		return err == nil && info.State == asynq.TaskStateArchived
	})
	tl := env.WaitTimeline("V-words", func(tl []visit.Entry) bool { return len(testenv.Entries(tl, "sms-failed")) == 1 })
	summary := testenv.Entries(tl, "sms-failed")[0].Summary

	// Twilio's sentence for 21211 is "The 'To' number … is not a valid phone number."
	for what, text := range map[string]string{"timeline": summary, "Asynq LastErr": info.LastErr} {
		if !strings.Contains(text, "Twilio error 21211: the phone number is not a valid destination (HTTP 400)") {
			t.Errorf("%s = %q; want the code in our words", what, text)
		}
		for _, theirs := range []string{"The 'To' number", "is not a valid phone number", "[redacted]", "+1500555"} {
			if strings.Contains(text, theirs) {
				t.Errorf("%s = %q; carries Twilio's text %q", what, text, theirs)
			}
		}
	}
}

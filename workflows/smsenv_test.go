package workflows_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/clock"
	"github.com/visitflow/visitflow/internal/config"
	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/workflows"
)

const (
	patientPhone  = testenv.PatientPhone
	providerPhone = testenv.ProviderPhone
)

// newSMSEnv is visitflow's engine and HTTP edge on real Redis, with Twilio
// played by the sandbox emulator over HTTP: SMS status callbacks and inbound
// SMS reach the app's real handlers, signed. No workers: tests start them.
func newSMSEnv(t *testing.T, configure ...func(*config.Config)) *testenv.Env {
	t.Helper()
	opts := []testenv.Option{testenv.WithSandbox(nil)}
	for _, f := range configure {
		opts = append(opts, testenv.Configure(f))
	}
	return testenv.New(t, opts...)
}

// newEngine is another visitflow process on env's Redis whose Twilio is tw
// and clock clk (nil: the real one).
func newEngine(env *testenv.Env, tw workflows.Twilio, clk clock.Clock) *workflows.Engine {
	return env.NewEngine(func(d *workflows.Deps) { d.Twilio, d.Clock = tw, clk })
}

func visitInput(id string, at time.Time, tz string) workflows.CreateInput {
	return workflows.CreateInput{ID: id, ScheduledAt: at.UTC().Format(time.RFC3339), Timezone: tz,
		Provider: workflows.PersonInput{Identity: "dr-lee", Name: "Dr. Lee", Phone: providerPhone},
		Patient:  workflows.PersonInput{Identity: "pat-1", Name: "Sam", Phone: patientPhone}}
}

// crashAfterSend is the Twilio boundary of a worker that dies right after
// Twilio accepted a message: the real request is made, then the job sees an
// error as if the process had stopped before recording the answer.
type crashAfterSend struct {
	workflows.Twilio
	mu      sync.Mutex
	crashes int
}

func (c *crashAfterSend) SendSMS(ctx context.Context, p twilioapi.SendSMSParams) (twilioapi.Message, error) {
	m, err := c.Twilio.SendSMS(ctx, p)
	if err != nil {
		return m, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.crashes > 0 {
		c.crashes--
		return twilioapi.Message{}, errors.New("worker lost: process stopped after Twilio answered")
	}
	return m, nil
}

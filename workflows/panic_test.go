package workflows_test

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/visitflow/visitflow/internal/testenv"
	"github.com/visitflow/visitflow/workflows"
)

// A job whose handler panics fails with an error Asynq retries, and
// neither that error (Asynq stores it, its dashboard shows it) nor the log
// carries the panic's value, which may hold PHI.
func TestJobPanicIsAnErrorWithoutItsValue(t *testing.T) {
	e := testenv.New(t)
	core, logs := observer.New(zapcore.InfoLevel)
	worker := e.NewEngine(func(d *workflows.Deps) {
		d.Store, d.Log = testenv.PHIPanickingStore{Store: d.Store}, zap.New(core)
	})
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("the job's panic reached Asynq's processor as a panic: %v", p)
			}
		}()
		err = testenv.Process(worker, workflows.TypeFollowupSend, workflows.Payload{VisitID: "V-1"})
	}()
	if err == nil {
		t.Fatal("a panicking job returned nil; want an error so Asynq retries it")
	}
	if testenv.ShowsPanicPHI(err.Error()) {
		t.Errorf("job error %q carries the panic's PHI", err)
	}
	testenv.PanicLogged(t, logs, "panic running a job")
}

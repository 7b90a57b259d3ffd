package simulate

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/visit"
)

// interpreterScenarios: the provider brings a phone interpreter into the
// visit through the API. The server must have the line the
// player asks for (Options.InterpreterLine: `visitflow simulate
// --interpreter-line`, default voyce-es); config.yaml's example
// line dials the emulator's busy-once number, so the first attempt is busy
// and the retry, interpreter.retry_backoff later (30s by default), answers.
func interpreterScenarios() []Scenario {
	patient, provider := visit.RolePatient, visit.RoleProvider
	return []Scenario{{
		Name:  "interpreter",
		About: "the provider calls the interpreter line: busy, retried, answered, IVR played, bridged; the visit ends",
		Want:  visit.Completed,
		// Room steps, one interpreter.retry_backoff (30s by default) and the
		// ringing and IVR of the retry.
		MinTimeout: 2 * time.Minute,
		steps: []step{
			join(patient, visit.Waiting),
			join(provider, visit.InProgress),
			{Say: "the provider requests the interpreter line (POST /v1/visits/{id}/interpreter)", Do: requestInterpreter, Then: visit.InProgress},
			{Say: "the line answers (on the retry), the IVR digits are played and the interpreter is bridged", Do: awaitBridged, Then: visit.InProgress},
			endVisit(visit.Completed),
			{Say: "the interpreter's call is hung up", Do: awaitLegHungUp, Then: visit.Completed},
		},
	}}
}

// requestInterpreter asks for the line and reports the first attempt's
// outcome: busy (then when the server retries) or, when the emulator's
// busy-once number was already used by an earlier run, answered at once.
func requestInterpreter(ctx context.Context, s *simulation) error {
	if err := s.API(ctx, http.MethodPost, s.visitPath("/interpreter"), map[string]string{"line": s.InterpreterLine}, nil); err != nil {
		return fmt.Errorf("%w (the server needs interpreter line %q: start it where config.yaml defines it, or pass --interpreter-line)", err, s.InterpreterLine)
	}
	s.say("  line %s requested; the server dials it", s.InterpreterLine)
	err := s.await(ctx, func(v simVisit) bool {
		leg := v.Interpreter
		return leg != nil && (leg.LastOutcome != "" || leg.State == visit.LegAnswered || leg.State == visit.LegBridged || leg.State == visit.LegFailed)
	})
	if err != nil {
		return fmt.Errorf("the first attempt never finished: %w", err)
	}
	leg := s.Visit.Interpreter
	switch {
	case leg.State == visit.LegFailed:
		return fmt.Errorf("the interpreter leg failed after %d attempts (%s)", leg.Attempts, leg.LastOutcome)
	case leg.LastOutcome == "":
		s.say("  attempt %d answered at once (the emulator's busy-once number was used up by an earlier run)", leg.Attempts)
	case leg.NextAttemptAt != nil:
		s.say("  attempt %d: %s; the server retries at %s, in %s (interpreter.retry_backoff; VISITFLOW_INTERPRETER_RETRY_BACKOFF=2s shortens the demo)",
			leg.Attempts, leg.LastOutcome, leg.NextAttemptAt.Local().Format("15:04:05"), time.Until(*leg.NextAttemptAt).Round(time.Second))
	default:
		s.say("  attempt %d: %s", leg.Attempts, leg.LastOutcome)
	}
	return nil
}

// awaitBridged waits until the leg is bridged and the interpreter is in the
// room, and shows the IVR digits the emulator played on the call.
func awaitBridged(ctx context.Context, s *simulation) error {
	identity := "interpreter-" + s.Visit.ID
	err := s.await(ctx, func(v simVisit) bool {
		return v.Interpreter != nil && (v.Interpreter.State == visit.LegBridged || v.Interpreter.State == visit.LegFailed) && v.connected(identity)
	})
	leg := s.Visit.Interpreter
	if err != nil || leg.State != visit.LegBridged {
		return fmt.Errorf("the interpreter was never bridged (leg %+v): %v", leg, err)
	}
	play, err := s.awaitEvent(ctx, leg.CallSID, func(e sandbox.Event) bool { return e.Kind == sandbox.KindVoiceVerb && e.Name == "Play" })
	if err != nil {
		return fmt.Errorf("no IVR digits were played on the interpreter call: %w", err)
	}
	s.say("  attempt %d answered; IVR digits %q played; %s joined the room; interpreter.state is %s",
		leg.Attempts, play.Params.Get("digits"), identity, leg.State)
	return nil
}

// awaitLegHungUp waits until the leg is ended and the emulator's call completed.
func awaitLegHungUp(ctx context.Context, s *simulation) error {
	err := s.await(ctx, func(v simVisit) bool { return v.Interpreter != nil && v.Interpreter.State == visit.LegEnded })
	if err != nil {
		return fmt.Errorf("the interpreter leg never ended: %w", err)
	}
	sid := s.Visit.Interpreter.CallSID
	status, err := s.awaitCallEnded(ctx, sid)
	if err != nil {
		return fmt.Errorf("the interpreter call %s was never hung up: %w", sid, err)
	}
	s.say("  interpreter.state is %s; call %s is %s", s.Visit.Interpreter.State, sid, status)
	return nil
}

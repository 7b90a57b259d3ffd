package simulate

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"

	"github.com/visitflow/visitflow/internal/sandbox"
	"github.com/visitflow/visitflow/internal/visit"
)

// dialInScenarios: an audio-only patient joins by phone with the visit's
// dial-in PIN.
func dialInScenarios() []Scenario {
	provider := visit.RoleProvider
	return []Scenario{{
		Name:  "dial-in",
		About: "an audio-only patient dials in, gets the PIN wrong once, then right, and is bridged; hangs up; the visit ends",
		Want:  visit.Completed,
		steps: []step{
			join(provider, visit.ProviderWaiting),
			{Say: "the patient calls our number from a phone (POST /sandbox/calls/incoming)", Do: dialIn, Then: visit.ProviderWaiting},
			{Say: "the caller enters a wrong PIN", Do: enterWrongPIN, Then: visit.ProviderWaiting},
			{Say: "the caller enters the visit's PIN (dial_in.pin) and is bridged as the patient's phone leg", Do: enterPIN, Then: visit.InProgress},
			{Say: "the caller hangs up (Twilio REST, Status=completed)", Do: hangUpCaller, Then: visit.ProviderWaiting},
			endVisit(visit.Completed),
		},
	}}
}

// dialIn places the inbound call from a random number, so repeated demos
// never reach the server's per-caller wrong-PIN limit.
func dialIn(ctx context.Context, s *simulation) error {
	if s.Visit.DialIn.PIN == "" {
		return fmt.Errorf("the visit has no dial_in.pin (is twilio.phone_number set?)")
	}
	n, err := rand.Int(rand.Reader, big.NewInt(10_000_000))
	if err != nil {
		return err
	}
	call, err := s.emulator.IncomingCallTo(ctx, fmt.Sprintf("+1555%07d", n.Int64()), s.Visit.DialIn.Number) // "" is our number
	if err != nil {
		return inSandbox(err)
	}
	s.CallSID = call.SID
	if _, err := s.awaitEvent(ctx, call.SID, func(e sandbox.Event) bool { return e.Kind == sandbox.KindVoiceTwiML && e.Name == "incoming" }); err != nil {
		return fmt.Errorf("the server never answered the call: %w", err)
	}
	s.say("  call %s to %s answered; the server asks for the visit PIN", call.SID, cmp.Or(s.Visit.DialIn.Number, "our number"))
	return nil
}

// enterWrongPIN presses a PIN that differs from the visit's in every digit
// and waits until the server has checked it.
func enterWrongPIN(ctx context.Context, s *simulation) error {
	wrong := []byte(s.Visit.DialIn.PIN)
	for i, d := range wrong {
		wrong[i] = '0' + (d-'0'+5)%10
	}
	if _, err := s.emulator.Digits(ctx, s.CallSID, string(wrong)+"#"); err != nil {
		return inSandbox(err)
	}
	if _, err := s.awaitEvent(ctx, s.CallSID, func(e sandbox.Event) bool {
		return e.Kind == sandbox.KindVoiceTwiML && e.Name == "gather" && e.Params.Get("Digits") == string(wrong)
	}); err != nil {
		return fmt.Errorf("the server never checked the PIN: %w", err)
	}
	s.say("  pressed %s# (the pound key ends the entry); the server finds no open visit for it and asks again", wrong)
	return nil
}

func enterPIN(ctx context.Context, s *simulation) error {
	s.say("  pressing %s#", s.Visit.DialIn.PIN)
	_, err := s.emulator.Digits(ctx, s.CallSID, s.Visit.DialIn.PIN+"#")
	return inSandbox(err)
}

func hangUpCaller(ctx context.Context, s *simulation) error {
	return s.HangUpCall(ctx, s.CallSID)
}

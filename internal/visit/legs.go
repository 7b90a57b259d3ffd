package visit

// Interpreter leg states (contract §4, issue 5), in the order a leg meets them.
const (
	LegRequested = "requested" // waiting for the dial job (first attempt or a retry after backoff)
	LegDialing   = "dialing"   // the call is being placed
	LegRinging   = "ringing"
	LegAnswered  = "answered" // answered; the IVR path is being played
	LegBridged   = "bridged"  // the interpreter is a participant of the room
	LegEnded     = "ended"    // hung up (by us, the interpreter, or the visit ending)
	LegFailed    = "failed"   // every attempt failed; the provider was told
)

// Live reports whether the leg is being dialled or is connected, i.e. a
// second request must wait (409) and ending the visit must hang it up.
func (l *InterpreterLeg) Live() bool {
	if l == nil {
		return false
	}
	switch l.State {
	case LegEnded, LegFailed:
		return false
	}
	return true
}

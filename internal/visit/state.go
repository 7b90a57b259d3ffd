package visit

// State is a visit's derived state (contract §5).
type State string

// States, as the contract names them.
const (
	Scheduled       State = "scheduled"
	Waiting         State = "waiting"
	ProviderWaiting State = "provider_waiting"
	InProgress      State = "in_progress"
	Interrupted     State = "interrupted"
	Completed       State = "completed"
	NoShow          State = "no_show"
	Cancelled       State = "cancelled"
)

// States lists every state, in the order a visit usually meets them.
var States = []State{Scheduled, Waiting, ProviderWaiting, InProgress, Interrupted, Completed, NoShow, Cancelled}

// ParseState returns the state named s, or false.
func ParseState(s string) (State, bool) {
	for _, st := range States {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}

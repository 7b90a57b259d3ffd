// Package simulate plays scripted visits against a running sandbox-mode
// visitflow server; it is the logic behind `visitflow simulate`.
//
// It owns the scenario registry (Scenarios, Lookup) and the player (Player,
// Play): a scenario creates a visit through the API, waits for its room,
// drives people, phone calls and the room through the emulator's control API
// and Twilio REST API under /sandbox, follows the visit after every step and
// prints its timeline. Play fails when the visit does not reach a step's
// state or the scenario's end state before the context's deadline.
//
// Scenarios are data: a name, a one-line story, steps and the end state.
// Each family lives in its own file (rooms.go, interpreter.go, dialin.go,
// reminders.go) and is registered in scenarios.go; steps.go holds the steps
// and awaiting helpers they share. Flags, the sandbox session file and the
// default credentials are the command's concern, passed in through Options.
package simulate

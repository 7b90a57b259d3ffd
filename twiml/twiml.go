// Package twiml builds every TwiML document visitflow returns to Twilio. The
// builders are pure (no I/O) and deterministic, so each document is
// golden-file tested.
//
// It uses encoding/xml rather than twilio-go's twiml package: the package is
// a leaf that imports only the standard library (architecture.md), the
// attribute order is fixed by the struct declarations (stable golden files),
// and text and attributes are escaped by the encoder, never by hand.
package twiml

import (
	"encoding/xml"
	"strconv"
	"strings"
)

// Verb is one TwiML verb: one of the types below.
type Verb interface{ verb() }

// Say speaks Text.
type Say struct {
	XMLName  xml.Name `xml:"Say"`
	Voice    string   `xml:"voice,attr,omitempty"`
	Language string   `xml:"language,attr,omitempty"`
	Text     string   `xml:",chardata"`
}

// Play plays DTMF Digits (0-9 * #, w = 0.5 s pause). It knows no W: see
// PlayDigits.
type Play struct {
	XMLName xml.Name `xml:"Play"`
	Digits  string   `xml:"digits,attr,omitempty"`
}

// Pause waits Length seconds.
type Pause struct {
	XMLName xml.Name `xml:"Pause"`
	Length  int      `xml:"length,attr,omitempty"`
}

// Gather collects DTMF while its prompts play, then requests Action with
// Digits. ActionOnEmptyResult makes a timeout submit an empty Digits too.
type Gather struct {
	XMLName             xml.Name `xml:"Gather"`
	Input               string   `xml:"input,attr,omitempty"`
	NumDigits           int      `xml:"numDigits,attr,omitempty"`
	FinishOnKey         string   `xml:"finishOnKey,attr,omitempty"`
	Timeout             int      `xml:"timeout,attr,omitempty"`
	Action              string   `xml:"action,attr,omitempty"`
	Method              string   `xml:"method,attr,omitempty"`
	ActionOnEmptyResult string   `xml:"actionOnEmptyResult,attr,omitempty"`
	Prompts             []Verb
}

// Connect bridges the call into a Video Group Room as ParticipantIdentity.
type Connect struct {
	XMLName xml.Name `xml:"Connect"`
	Room    Room
}

// Room is the noun of Connect: the room's UniqueName.
type Room struct {
	XMLName             xml.Name `xml:"Room"`
	ParticipantIdentity string   `xml:"participantIdentity,attr,omitempty"`
	Name                string   `xml:",chardata"`
}

// Redirect continues the call with the TwiML at URL.
type Redirect struct {
	XMLName xml.Name `xml:"Redirect"`
	Method  string   `xml:"method,attr,omitempty"`
	URL     string   `xml:",chardata"`
}

// Hangup ends the call.
type Hangup struct {
	XMLName xml.Name `xml:"Hangup"`
}

func (Say) verb()      {}
func (Play) verb()     {}
func (Pause) verb()    {}
func (Gather) verb()   {}
func (Connect) verb()  {}
func (Redirect) verb() {}
func (Hangup) verb()   {}

type response struct {
	XMLName xml.Name `xml:"Response"`
	Verbs   []Verb
}

// Document renders verbs as a complete TwiML document. It never fails for
// the verb types of this package.
func Document(verbs ...Verb) string {
	b, err := xml.Marshal(response{Verbs: verbs})
	if err != nil {
		// Only a foreign Verb type could fail to marshal: a programming error.
		panic("twiml: " + err.Error())
	}
	return xml.Header + string(b)
}

// voice is the voice every prompt uses.
const voice = "Polly.Joanna"

func say(text string) Say { return Say{Voice: voice, Text: text} }

// PlayDigits writes a DTMF path as <Play digits> takes it: the one-second
// pause W (which SendDigits and our configuration know) becomes ww, since
// <Play digits> knows only w, half a second.
func PlayDigits(path string) string { return strings.ReplaceAll(path, "W", "ww") }

// Bridge answers the interpreter call: it walks the line's phone tree by
// playing ivr (nothing when empty; W written as ww), then joins room as
// identity.
func Bridge(ivr, room, identity string) string {
	var verbs []Verb
	if ivr != "" {
		verbs = append(verbs, Play{Digits: PlayDigits(ivr)})
	}
	verbs = append(verbs, Connect{Room: Room{ParticipantIdentity: identity, Name: room}})
	return Document(verbs...)
}

// HangUp ends a call we no longer want (a cancelled leg, an answering machine).
func HangUp() string { return Document(Hangup{}) }

// PINPrompt is the PIN request of a dial-in call.
type PINPrompt struct {
	// Action receives the PIN (Digits; empty after a timeout).
	Action string
	// Digits is the PIN's length, as the caller is told.
	Digits int
	// Retry says the previous PIN found no open visit.
	Retry bool
	// Hold, when positive, makes the caller wait that many seconds before
	// being asked (a caller over a guessing limit).
	Hold int
}

// pinTimeout is how long the Gather waits for the next key before it
// submits what it has.
const pinTimeout = 10

// AskPIN gathers the visit PIN. The Gather has no numDigits: it submits
// when the caller presses the pound key (or after pinTimeout seconds of
// silence), which is exactly what the prompt asks for, and a "#" is never
// left over to end the next prompt early.
func AskPIN(p PINPrompt) string {
	ask := "Please enter your " + strconv.Itoa(p.Digits) + " digit visit PIN, then press the pound key."
	var verbs []Verb
	switch {
	case p.Retry:
		ask = NoOpenVisit + " Please enter your " + strconv.Itoa(p.Digits) + " digit visit PIN again, then press the pound key."
	case p.Hold > 0:
		verbs = append(verbs, say("Welcome to your telehealth visit. Please hold."), Pause{Length: p.Hold})
	default:
		ask = "Welcome to your telehealth visit. " + ask
	}
	return Document(append(verbs, Gather{
		Input: "dtmf", FinishOnKey: "#", Timeout: pinTimeout,
		Action: p.Action, Method: "POST", ActionOnEmptyResult: "true",
		Prompts: []Verb{say(ask)},
	})...)
}

// NoOpenVisit is what a caller hears for a PIN that opens no visit now:
// wrong, or right outside its window, alike.
const NoOpenVisit = "Sorry, we could not find an open visit for that PIN."

// Goodbye says message and hangs up.
func Goodbye(message string) string { return Document(say(message), Hangup{}) }

// JoinRoom tells a dial-in caller they are being connected and bridges them
// into room as identity; if the room cannot be joined the call says so and
// ends.
func JoinRoom(room, identity string) string {
	return Document(
		say("Thank you. Connecting you to your visit now."),
		Connect{Room: Room{ParticipantIdentity: identity, Name: room}},
		say("Your visit has ended or could not be joined. Goodbye."),
		Hangup{},
	)
}

// Hold asks the caller to wait length seconds and then continues at next,
// while the visit's room is being opened.
func Hold(next string, length int) string {
	return Document(
		say("Please hold while we open your visit."),
		Pause{Length: length},
		Redirect{Method: "POST", URL: next},
	)
}

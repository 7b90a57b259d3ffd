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

// PINLength is the number of digits of a dial-in PIN.
const PINLength = 6

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

// AskPIN greets a dial-in caller and gathers the visit PIN, submitting it
// (or nothing, after a timeout) to action. retry says the previous PIN was
// not recognised.
func AskPIN(action string, retry bool) string {
	prompt := "Welcome to your telehealth visit. Please enter your " + strconv.Itoa(PINLength) +
		" digit visit PIN, followed by the pound key."
	if retry {
		prompt = "Sorry, that PIN was not recognised. Please enter your " + strconv.Itoa(PINLength) +
			" digit visit PIN again, followed by the pound key."
	}
	return Document(Gather{
		Input: "dtmf", NumDigits: PINLength, FinishOnKey: "#", Timeout: 10,
		Action: action, Method: "POST", ActionOnEmptyResult: "true",
		Prompts: []Verb{say(prompt)},
	})
}

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

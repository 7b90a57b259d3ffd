package sandbox

import (
	"net/url"
	"strconv"
)

// Answering-machine detection (twilio-protocol §9). Twilio listens to the
// greeting: speech longer than MachineDetectionSpeechThreshold is a machine
// (machine_start); a short greeting followed by
// MachineDetectionSpeechEndThreshold of silence is a human. With
// DetectMessageEnd a machine verdict waits for the end of the greeting: the
// beep (machine_end_beep) or silence (machine_end_silence). Detection is
// synchronous: the call's Url is fetched only when it is over, at most
// MachineDetectionTimeout after the answer.
//
// The greetings the emulator's destinations play, in Twilio seconds:
const (
	humanGreetingSeconds   = 1.0  // "Hello?"
	machineGreetingSeconds = 5.0  // a voicemail greeting, then the beep
	ivrMenuSeconds         = 10.0 // "Thank you for calling…, for Spanish press 1…", then silence, waiting for keys
)

// amdParams are the detection thresholds of one call, in Twilio seconds.
type amdParams struct {
	timeout, speech, speechEnd, silence float64
}

// parseAMD reads the MachineDetection* parameters of a Create Call; ok is
// false when one is out of Twilio's range.
func parseAMD(f url.Values) (amdParams, bool) {
	p := amdParams{timeout: 30, speech: 2.4, speechEnd: 1.2, silence: 5}
	ok := true
	read := func(name string, def float64, lo, hi int, scale float64) float64 {
		s := f.Get(name)
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			ok = false
			return def
		}
		return float64(n) / scale
	}
	p.timeout = read("MachineDetectionTimeout", p.timeout, 3, 59, 1)
	p.speech = read("MachineDetectionSpeechThreshold", p.speech, 1000, 6000, 1000)
	p.speechEnd = read("MachineDetectionSpeechEndThreshold", p.speechEnd, 500, 5000, 1000)
	p.silence = read("MachineDetectionSilenceTimeout", p.silence, 2000, 10000, 1000)
	return p, ok
}

// detect returns Twilio's verdict on what answered the call and how long,
// in Twilio seconds, detection took. mode is Enable or DetectMessageEnd.
func detect(o outcome, mode string, p amdParams) (answeredBy string, seconds float64) {
	var verdict string
	var took float64
	switch o {
	case answerMachine:
		verdict, took = "machine_start", p.speech
		if mode == "DetectMessageEnd" {
			verdict, took = "machine_end_beep", machineGreetingSeconds+0.5
		}
	case answerIVR:
		// A recorded menu is long speech: a machine, whatever a person
		// would hear in it. It ends in silence, not a beep.
		verdict, took = "machine_start", p.speech
		if mode == "DetectMessageEnd" {
			verdict, took = "machine_end_silence", ivrMenuSeconds+p.speechEnd
		}
	default:
		verdict, took = "human", humanGreetingSeconds+p.speechEnd
	}
	if took > p.timeout {
		return "unknown", p.timeout
	}
	return verdict, took
}

package workflows

import "strings"

// smsKeywordKind is what an inbound text asks of our opt-out record.
type smsKeywordKind string

const (
	keywordNone  smsKeywordKind = ""
	keywordStop  smsKeywordKind = "stop"
	keywordStart smsKeywordKind = "start"
	keywordHelp  smsKeywordKind = "help"
)

// Twilio's standard keywords (twilio-protocol §9). Twilio reacts to one
// only when it is the whole message, so "Stop please" or "Cancel my
// appointment" are ordinary messages and must not opt anyone out.
var smsKeywords = map[string]smsKeywordKind{
	"STOP": keywordStop, "STOPALL": keywordStop, "UNSUBSCRIBE": keywordStop, "CANCEL": keywordStop,
	"END": keywordStop, "QUIT": keywordStop, "REVOKE": keywordStop, "OPTOUT": keywordStop,
	"START": keywordStart, "YES": keywordStart, "UNSTOP": keywordStart,
	"HELP": keywordHelp, "INFO": keywordHelp,
}

// smsKeyword decides what an inbound text is: Twilio's OptOutType when the
// webhook carries one (Advanced Opt-Out, custom keywords included: Twilio
// has already acted on it), else the trimmed whole body against Twilio's
// keyword lists, in any case.
func smsKeyword(body, optOutType string) smsKeywordKind {
	switch strings.ToUpper(strings.TrimSpace(optOutType)) {
	case "STOP":
		return keywordStop
	case "START":
		return keywordStart
	case "HELP":
		return keywordHelp
	}
	return smsKeywords[strings.ToUpper(strings.TrimSpace(body))]
}

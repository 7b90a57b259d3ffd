package sandbox

import (
	"strings"
)

// Twilio's opt-out handling (twilio-protocol §9): an inbound message is a
// keyword only when its whole body, trimmed and in any case, is one of these.
// "Stop please" is an ordinary message.
var optOutKeywords = map[string]string{
	"STOP": "STOP", "STOPALL": "STOP", "UNSUBSCRIBE": "STOP", "CANCEL": "STOP", "END": "STOP",
	"QUIT": "STOP", "REVOKE": "STOP", "OPTOUT": "STOP",
	"START": "START", "YES": "START", "UNSTOP": "START",
	"HELP": "HELP", "INFO": "HELP",
}

// Twilio's default automatic replies.
const (
	autoReplySTOP  = "You have successfully been unsubscribed. You will not receive any more messages from this number. Reply START to resubscribe."
	autoReplySTART = "You have successfully been re-subscribed to messages from this number. Reply STOP to unsubscribe."
	autoReplyHELP  = "Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)

// keywordType is the opt-out type of an inbound body ("STOP", "START",
// "HELP"), or "". custom adds keywords (Advanced Opt-Out), upper-case.
func keywordType(body string, custom map[string]string) string {
	word := strings.ToUpper(strings.TrimSpace(body))
	if t, ok := custom[word]; ok {
		return t
	}
	return optOutKeywords[word]
}

func autoReply(typ string) string {
	switch typ {
	case "STOP":
		return autoReplySTOP
	case "START":
		return autoReplySTART
	case "HELP":
		return autoReplyHELP
	}
	return ""
}

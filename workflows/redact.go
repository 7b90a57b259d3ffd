package workflows

import (
	"encoding/json"
	"sort"
	"strings"
)

// payloadKeys are the only payload fields the dashboard may show. Payloads
// carry ids only by construction; this is the second lock on the door, for
// a payload some future task gets wrong.
// Every field of Payload is listed (a test holds it to that).
var payloadKeys = map[string]bool{"visit_id": true, "schedule": true, "reminder": true, "transition": true,
	"from": true, "to": true, "at": true, "request": true, "attempt": true,
	"step": true}

// RedactPayload formats a task payload for the Asynq dashboard showing only
// known id fields; anything else is reported as redacted, never shown.
func RedactPayload(_ string, payload []byte) string {
	if len(payload) == 0 {
		return "{}"
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return "(redacted: not a visitflow payload)"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		if !payloadKeys[k] {
			b.WriteString(k + ": (redacted)")
			continue
		}
		v, _ := json.Marshal(m[k])
		b.WriteString(k + ": " + string(v))
	}
	b.WriteString("}")
	return b.String()
}

// Package twiml builds TwiML documents. Builders are pure (no I/O) and
// golden-file tested.
package twiml

import (
	"bytes"
	"encoding/xml"
)

// MessagingResponse answers an inbound SMS webhook: one <Message> per reply;
// no replies is the empty <Response/>, which tells Twilio to send nothing.
func MessagingResponse(replies ...string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	if len(replies) == 0 {
		b.WriteString("<Response/>\n")
		return b.Bytes()
	}
	b.WriteString("<Response>")
	for _, r := range replies {
		b.WriteString("<Message>")
		_ = xml.EscapeText(&b, []byte(r)) // writes to a bytes.Buffer cannot fail
		b.WriteString("</Message>")
	}
	b.WriteString("</Response>\n")
	return b.Bytes()
}

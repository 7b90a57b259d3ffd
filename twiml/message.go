package twiml

import "encoding/xml"

// Message is an SMS reply to an inbound message.
type Message struct {
	XMLName xml.Name `xml:"Message"`
	Text    string   `xml:",chardata"`
}

func (Message) verb() {}

// MessagingResponse answers an inbound SMS webhook: one <Message> per reply;
// no replies is an empty <Response>, which tells Twilio to send nothing.
func MessagingResponse(replies ...string) []byte {
	verbs := make([]Verb, len(replies))
	for i, r := range replies {
		verbs[i] = Message{Text: r}
	}
	return []byte(Document(verbs...))
}

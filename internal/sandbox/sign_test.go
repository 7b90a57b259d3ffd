package sandbox

import (
	"net/url"
	"testing"
)

// Vectors from twilio-protocol.md §1.3 (SDK test suites) and §1.4.
func TestSign(t *testing.T) {
	const u = "https://mycompany.com/myapp.php?foo=1&bar=2"
	p := url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675309"}, "Digits": {"1234"},
		"From": {"+14158675309"}, "To": {"+18005551212"},
	}
	withReason := url.Values{"Reason": {"Participant"}, "ReasonConferenceEnded": {"test"}}
	for k, v := range p {
		withReason[k] = v
	}
	tests := []struct {
		name, token, url string
		params           url.Values
		want             string
	}{
		{"sdk fixture", "12345", u, p, "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
		{"repeated values deduplicated and sorted", "12345", u,
			url.Values{"Sid": {"CA123"}, "SidAccount": {"AC123"}, "Digits": {"5678", "1234", "1234"}},
			"IK+Dwps556ElfBT0I3Rgjkr1wJU="},
		{"repeated dotted name", "12345", u,
			url.Values{"MessagingBinding.Address": {"+1415xxxxxxx", "+1325xxxxxxx"}},
			"83O6e2vORAoJHUNzJjDWN1jz+BA="},
		{"empty values", "12345", u,
			url.Values{"Digits": {""}, "CallSid": {"CA1234567890ABCDE"}, "EmptyParam": {""}},
			"9HHp/OqQMEwdrVebHDdA/+tqjX8="},
		{"byte order of names", "12345", u,
			url.Values{"callSid": {"lowercase"}, "CallSid": {"uppercase"}, "CALLSID": {"allcaps"}},
			"jDK7WKT8wiNrwggd4ceTv4e1MJ4="},
		{"shorter name first", "12345", u, withReason, "vOEb5UThFn24KEfnOFLQY2AE5FY="},
		{"utf-8", "12345", u,
			url.Values{"Message": {"Hello & goodbye! @#$%^*()"}, "From": {"+1 (415) 867-5309"}, "Special": {"unicode: ñáéíóú"}},
			"dCPiR4WtQ6QFN6pJh81CtlCcWLQ="},
		{"no params", "12345", u, nil, "zYQTYrRWXE7LtzbG4PfP7/bkkGo="},
		{"GET status callback", "12345",
			"https://example.com/twilio/voice/status?AccountSid=AC00000000000000000000000000000000&CallSid=CA11111111111111111111111111111111&CallStatus=ringing",
			nil, "wYPbBimEwJS/OJK1/FXiWT3Tbl0="},
		{"fragment removed before signing", "12345", "https://example.com/twilio/video/status", nil, "cP84tA7pCi6SEuPcBS5Ph4gIXRo="},
		{"video callback", "0123456789abcdef0123456789abcdef", "https://hooks.example.com/twilio/video/status?visit=V-42",
			mustQuery(t, "AccountSid=AC00000000000000000000000000000000&ParticipantIdentity=interpreter-line&ParticipantSid=PA00000000000000000000000000000002&ParticipantStatus=connected&RoomName=visit-V-42&RoomSid=RM00000000000000000000000000000001&RoomStatus=in-progress&RoomType=group&SequenceNumber=1&StatusCallbackEvent=participant-connected&Timestamp=2025-10-27T18%3A16%3A01.876Z"),
			"RJRtaLZZRGXVbenjHXcLdDRDiD8="},
		{"voice callback", "0123456789abcdef0123456789abcdef", "https://hooks.example.com/twilio/voice/status",
			mustQuery(t, "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01&CallSid=CA11111111111111111111111111111111&CallStatus=in-progress&CallbackSource=call-progress-events&Called=%2B15005550006&Caller=%2B15005550001&Direction=outbound-api&From=%2B15005550001&SequenceNumber=2&Timestamp=Sun%2C+25+Mar+2018+09%3A53%3A19+%2B0000&To=%2B15005550006"),
			"BQwFl1lzk/KvD/QqX7issVwVR4I="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sign(tt.token, tt.url, tt.params); got != tt.want {
				t.Errorf("sign(%q, %q, %v) = %q; want %q", tt.token, tt.url, tt.params, got, tt.want)
			}
		})
	}
}

func mustQuery(t *testing.T, s string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestE164(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"+15005550006", true}, {"+442071838750", true}, {"+1", false}, {"+1555", false}, {"+150055500061", false},
		{"15005550006", false}, {"+0123", false}, {"+1500555000a", false}, {"+4412345678901234", false},
	} {
		if got := e164(tt.in); got != tt.want {
			t.Errorf("e164(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

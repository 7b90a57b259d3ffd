package twiliosig_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/visitflow/visitflow/internal/twiliosig"
)

// Fixture shared by the SDK test suites (twilio-protocol.md §1.3).
const (
	token   = "12345"
	fixURL  = "https://mycompany.com/myapp.php?foo=1&bar=2"
	fixBody = `{"property": "value", "boolean": true}`
	bodyHex = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
	emptyJS = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" // sha256("{}")
	sig1    = "RSOYDt4T1cUTdK1PDd93/VVr8B8="

	// Derived vectors (§1.4).
	hookToken    = "0123456789abcdef0123456789abcdef"
	videoURL     = "https://hooks.example.com/twilio/video/status?visit=V-42"
	videoBody    = "AccountSid=AC00000000000000000000000000000000&ParticipantIdentity=interpreter-line&ParticipantSid=PA00000000000000000000000000000002&ParticipantStatus=connected&RoomName=visit-V-42&RoomSid=RM00000000000000000000000000000001&RoomStatus=in-progress&RoomType=group&SequenceNumber=1&StatusCallbackEvent=participant-connected&Timestamp=2025-10-27T18%3A16%3A01.876Z"
	videoSig     = "RJRtaLZZRGXVbenjHXcLdDRDiD8="
	voiceURL     = "https://hooks.example.com/twilio/voice/status"
	voiceBody    = "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01&CallSid=CA11111111111111111111111111111111&CallStatus=in-progress&CallbackSource=call-progress-events&Called=%2B15005550006&Caller=%2B15005550001&Direction=outbound-api&From=%2B15005550001&SequenceNumber=2&Timestamp=Sun%2C+25+Mar+2018+09%3A53%3A19+%2B0000&To=%2B15005550006"
	voiceSig     = "BQwFl1lzk/KvD/QqX7issVwVR4I="
	voiceSig443  = "bGuGSCuM3qmUbys7f95wLcnqBkw="
	getStatusURL = "https://example.com/twilio/voice/status?AccountSid=AC00000000000000000000000000000000&CallSid=CA11111111111111111111111111111111&CallStatus=ringing"
)

// fixParams is P of the common fixture.
func fixParams() url.Values {
	return url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
}

// with returns a copy of p with extra values added.
func with(p url.Values, kv ...string) url.Values {
	q := url.Values{}
	for k, vs := range p {
		q[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return q
}

func mustParse(t testing.TB, body string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(body)
	if err != nil {
		t.Fatalf("url.ParseQuery(%q): %v", body, err)
	}
	return v
}

type vector struct {
	name   string
	token  string
	url    string
	params url.Values // form POST / GET; ignored when json
	json   bool       // verify with VerifyJSON(body)
	body   string
	sig    string
	want   bool
	// signedAs, when set, is the URL whose Sign must equal sig: it pins the
	// exact string Twilio signed (e.g. the :443 variant) rather than only
	// that some variant matched.
	signedAs string
}

func vectors(t testing.TB) []vector {
	P := fixParams()
	repeated := url.Values{"Sid": {"CA123"}, "SidAccount": {"AC123"}, "Digits": {"5678", "1234", "1234"}}
	reason := with(P, "ReasonConferenceEnded", "test", "Reason", "Participant")
	quoteSigned := "https://example.com/path?test=param'WithQuote"
	quoteEscaped := "https://example.com/path?test=param%27WithQuote"
	return []vector{
		// §1.3, SDK test suites.
		{name: "1 py,node,java,ruby,cs", url: fixURL, params: P, sig: sig1, want: true, signedAs: fixURL},
		{name: "2 all NOTRSOYDt", url: fixURL, params: P, sig: "NOTRSOYDt4T1cUTdK1PDd93/VVr8B8="},
		{name: "2 all WRONG_SIGNATURE", url: fixURL, params: P, sig: "WRONG_SIGNATURE"},
		{name: "2 all fake_signature", url: fixURL, params: P, sig: "fake_signature"},
		{name: "2 all empty", url: fixURL, params: P, sig: ""},
		{name: "2 all null (a missing header reads as empty in Go)", url: fixURL, params: P},
		{name: "3 py,node,java,ruby,cs port removed", url: "https://mycompany.com:1234/myapp.php?foo=1&bar=2", params: P, sig: sig1, want: true},
		{name: "4 py,node,java,ruby,cs http with port", url: "http://mycompany.com:1234/myapp.php?foo=1&bar=2", params: P, sig: "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=", want: true, signedAs: "http://mycompany.com:1234/myapp.php?foo=1&bar=2"},
		{name: "5 py,node,java,ruby,cs :443 added", url: fixURL, params: P, sig: "kvajT1Ptam85bY51eRf/AJRuM3w=", want: true, signedAs: "https://mycompany.com:443/myapp.php?foo=1&bar=2"},
		{name: "6 py,node,java,ruby,cs :80 added", url: "http://mycompany.com/myapp.php?foo=1&bar=2", params: P, sig: "0ZXoZLH/DfblKGATFgpif+LLRf4=", want: true, signedAs: "http://mycompany.com:80/myapp.php?foo=1&bar=2"},
		{name: "7 py,node,java,ruby,go,cs JSON", url: fixURL + "&bodySHA256=" + bodyHex, json: true, body: fixBody, sig: "a9nBmqA0ju/hNViExpshrM61xv4=", want: true, signedAs: fixURL + "&bodySHA256=" + bodyHex},
		{name: "7 JSON tampered body", url: fixURL + "&bodySHA256=" + bodyHex, json: true, body: `{"property": "value", "boolean": false}`, sig: "a9nBmqA0ju/hNViExpshrM61xv4="},
		{name: "8 node,java,ruby,go,cs JSON only bodySHA256", url: "https://mycompany.com/myapp.php?bodySHA256=" + bodyHex, json: true, body: fixBody, sig: "y77kIzt2vzLz71DgmJGsen2scGs=", want: true},
		{name: "9 node JSON {} only the :443 variant", url: fixURL + "&bodySHA256=" + emptyJS, json: true, body: "{}", sig: "Ldidvp12m26NI7eqEvxnEpkd9Hc=", want: true, signedAs: "https://mycompany.com:443/myapp.php?foo=1&bar=2&bodySHA256=" + emptyJS},
		{name: "10 node,java,ruby,go,cs JSON without bodySHA256", url: fixURL, json: true, body: fixBody, sig: sig1},
		{name: "11 ruby JSON without query", url: "https://mycompany.com/myapp.php", json: true, body: fixBody, sig: sig1},
		{name: "12 node,py repeated Digits", url: fixURL, params: repeated, sig: "IK+Dwps556ElfBT0I3Rgjkr1wJU=", want: true},
		{name: "13 node repeated key ascending", url: fixURL, params: url.Values{"MessagingBinding.Address": {"+1325xxxxxxx", "+1415xxxxxxx"}}, sig: "83O6e2vORAoJHUNzJjDWN1jz+BA=", want: true},
		{name: "13 node repeated key descending", url: fixURL, params: url.Values{"MessagingBinding.Address": {"+1415xxxxxxx", "+1325xxxxxxx"}}, sig: "83O6e2vORAoJHUNzJjDWN1jz+BA=", want: true},
		{name: "14 node user:pass no port", url: "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2", params: P, sig: "CukzLTc1tT5dXEDIHm/tKBanW10=", want: true, signedAs: "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2"},
		{name: "15 node,ruby user:pass :443", url: "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2", params: P, sig: "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=", want: true, signedAs: "https://user:pass@mycompany.com:443/myapp.php?foo=1&bar=2"},
		{name: "16 node user no port", url: "https://user@mycompany.com/myapp.php?foo=1&bar=2", params: P, sig: "2YRLlVAflCqxaNicjMpJcSTgzSs=", want: true},
		{name: "17 ruby user :443", url: "https://user@mycompany.com/myapp.php?foo=1&bar=2", params: P, sig: "aZfj4hyX1MLZhSS6QIL18Vn2/RA=", want: true, signedAs: "https://user@mycompany.com:443/myapp.php?foo=1&bar=2"},
		{name: "18 node ' signed as %27", url: fixURL + "&Body=It's+amazing", params: P, sig: "TfZzewPq8wqrGlMfyAud8+/IvJ0=", want: true, signedAs: fixURL + "&Body=It%27s+amazing"},
		{name: "18 node %27 as received", url: fixURL + "&Body=It%27s+amazing", params: P, sig: "TfZzewPq8wqrGlMfyAud8+/IvJ0=", want: true},
		{name: "19 java empty params", url: fixURL, params: url.Values{}, sig: "zYQTYrRWXE7LtzbG4PfP7/bkkGo=", want: true, signedAs: fixURL},
		{name: "19 java nil params", url: fixURL, sig: "zYQTYrRWXE7LtzbG4PfP7/bkkGo=", want: true},
		{name: "20 java no query", url: "https://mycompany.com/myapp.php", params: P, sig: "1xaxFBvyzXYvWplzNOSs28HWO94=", want: true, signedAs: "https://mycompany.com/myapp.php"},
		{name: "21 java query params are signed", url: fixURL + "&type=thiswontbeusedinthesignaturegeneratorandsoshouldbeignored", params: P, sig: "hYkNsTBttoNGkyCS0p+wWmQoRTg=", want: true},
		{name: "21 java query param dropped", url: fixURL, params: P, sig: "hYkNsTBttoNGkyCS0p+wWmQoRTg="},
		{name: "22 java percent-encoding kept", url: "https://mycompany.com/myapp.php?foo=hello%20world&bar=test%2Bvalue", params: P, sig: "er2tvAP1Wx+iuTTE2BPgvEaN1cs=", want: true},
		{name: "23 java special characters", url: fixURL, params: url.Values{"Message": {"Hello & goodbye! @#$%^*()"}, "From": {"+1 (415) 867-5309"}, "Special": {"unicode: ñáéíóú"}}, sig: "dCPiR4WtQ6QFN6pJh81CtlCcWLQ=", want: true},
		{name: "24 java empty values", url: fixURL, params: url.Values{"Digits": {""}, "CallSid": {"CA1234567890ABCDE"}, "EmptyParam": {""}}, sig: "9HHp/OqQMEwdrVebHDdA/+tqjX8=", want: true},
		{name: "25 java null values", url: fixURL, params: url.Values{"Digits": nil, "CallSid": {"CA1234567890ABCDE"}, "NullParam": nil}, sig: "L9lTTwIlxM1xGAtLRwhOSZggRhM=", want: true},
		{name: "25 java null as empty string", url: fixURL, params: url.Values{"Digits": {""}, "CallSid": {"CA1234567890ABCDE"}, "NullParam": {""}}, sig: "L9lTTwIlxM1xGAtLRwhOSZggRhM=", want: true},
		{name: "26 java sorted names", url: fixURL, params: url.Values{"Zebra": {"last"}, "Alpha": {"first"}, "Beta": {"second"}, "Gamma": {"third"}}, sig: "enveUe73ZTVLAekHxez3Qx6JuuQ=", want: true},
		{name: "27 java raw unicode URL", url: "https://mycompany.com/webhook/España?año=2023", params: P, sig: "G/Hx6mqqnjUNlPAoi2Sp9bGst0g=", want: true},
		{name: "27 java unicode URL percent-encoded", url: "https://mycompany.com/webhook/Espa%C3%B1a?a%C3%B1o=2023", params: P, sig: "G/Hx6mqqnjUNlPAoi2Sp9bGst0g="},
		{name: "28 java case-sensitive byte order", url: fixURL, params: url.Values{"callSid": {"lowercase"}, "CallSid": {"uppercase"}, "CALLSID": {"allcaps"}}, sig: "jDK7WKT8wiNrwggd4ceTv4e1MJ4=", want: true},
		{name: "29 java :443// kept", url: "https://mycompany.com:443//myapp.php?foo=1&bar=2", params: P, sig: "A9lH3u16NjyiiM/+wylw5rirFUs=", want: true},
		{name: "30 go shorter key first", url: fixURL, params: reason, sig: "vOEb5UThFn24KEfnOFLQY2AE5FY=", want: true},
		{name: "30 go with :1234", url: "https://mycompany.com:1234/myapp.php?foo=1&bar=2", params: reason, sig: "vOEb5UThFn24KEfnOFLQY2AE5FY=", want: true},
		{name: "31 go http", url: "http://mycompany.com/myapp.php?foo=1&bar=2", params: reason, sig: "n2xBNyzSW7rfYStDtOFiFMv7qNo=", want: true, signedAs: "http://mycompany.com/myapp.php?foo=1&bar=2"},
		{name: "31 go http with :1234", url: "http://mycompany.com:1234/myapp.php?foo=1&bar=2", params: reason, sig: "n2xBNyzSW7rfYStDtOFiFMv7qNo=", want: true},
		{name: "32 go longer key first", url: fixURL, params: reason, sig: "95+Bu0JVPi0r/SsESZCVf0dWAjw="},
		{name: "33 go form body", url: fixURL, params: mustParse(t, "property=value&boolean=true"), sig: "NBdBDr/T/lgjI+tlgpXjKZQZs/k=", want: true},
		{name: "34 cs host case kept", url: "https://MyCompany.com/myapp.php?foo=1&bar=2", params: P, sig: "g9IN/x4Cft2g517EjYvEvM/W7LU=", want: true},
		{name: "34 cs lower-case signature on mixed-case host", url: "https://MyCompany.com/myapp.php?foo=1&bar=2", params: P, sig: sig1},
		{name: "35 cs mixed case with port", url: "https://MyCompany.com:1234/myapp.php?foo=1&bar=2", params: P, sig: "PCqOZm8cnu/L6+u5i5fuEd+Iac4=", want: true},
		{name: "36 cs http mixed case", url: "http://MyCompany.com/myapp.php?foo=1&bar=2", params: P, sig: "XY7AlKOKL6im4yWyX84gldUrtis=", want: true},
		{name: "37 cs http userinfo", url: "http://username:password@MyCompany.com/myapp.php?foo=1&bar=2", params: P, sig: "PJ08CxXr7KLPjEQCTc8LkUSMwSM=", want: true},
		{name: "38 cs upper-case scheme kept", url: "HTTP://username:password@MyCompany.com/myapp.php?foo=1&bar=2", params: P, sig: "hy/l8pca+LFms4cvRdv8uiP6NGc=", want: true},
		{name: "39 cs mixed-case userinfo", url: "http://Username:Password@MyCompany.com/myapp.php?foo=1&bar=2", params: P, sig: "SkTSKyDJH9kUlhItI0slbgZ1UsI=", want: true},
		{name: "40 cs with :1234", url: "https://mycompany.com:1234/myapp.php?foo=1&bar=2", params: P, sig: "CYn1h0gLBdNxDGkKJg6hYohgeD8=", want: true},
		{name: "41 go README", url: fixURL, params: url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"}, "From": {"+12349013030"}, "To": {"+18005551212"}}, sig: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", want: true},
		{name: "42 docs security page", url: "https://example.com/myapp.php?foo=1&bar=2", params: url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675310"}, "Digits": {"1234"}, "From": {"+14158675310"}, "To": {"+18005551212"}}, sig: "L/OH5YylLD5NRKLltdqwSvS0BnU=", want: true},
		{name: "wrong token", token: "54321", url: fixURL, params: P, sig: sig1},
		// Anyone can compute an HMAC keyed with "": an unset token must fail closed.
		{name: "empty token", token: "-", url: fixURL, params: P, sig: twiliosig.Sign("", fixURL, P)},
		{name: "empty token JSON", token: "-", url: fixURL + "&bodySHA256=" + bodyHex, json: true, body: fixBody, sig: twiliosig.Sign("", fixURL+"&bodySHA256="+bodyHex, nil)},

		// §1.3, node webhooks.spec.js (token s3cr3t).
		{name: "node s3cr3t no-port sig, no-port URL", token: "s3cr3t", url: "https://example.com/path?test=param", sig: "loLgTitFAoWx57yy5oEU4Hlddzw=", want: true, signedAs: "https://example.com/path?test=param"},
		{name: "node s3cr3t no-port sig, :443 URL", token: "s3cr3t", url: "https://example.com:443/path?test=param", sig: "loLgTitFAoWx57yy5oEU4Hlddzw=", want: true},
		{name: "node s3cr3t :443 sig, :443 URL", token: "s3cr3t", url: "https://example.com:443/path?test=param", sig: "IdwMFypqvNxti3YgvWWmfcNL26M=", want: true, signedAs: "https://example.com:443/path?test=param"},
		{name: "node s3cr3t :443 sig, no-port URL", token: "s3cr3t", url: "https://example.com/path?test=param", sig: "IdwMFypqvNxti3YgvWWmfcNL26M=", want: true},
		{name: "node s3cr3t no-port sig, other query", token: "s3cr3t", url: "https://example.com/path?test=param2", sig: "loLgTitFAoWx57yy5oEU4Hlddzw="},
		{name: "node s3cr3t :443 sig, other query", token: "s3cr3t", url: "https://example.com/path?test=param2", sig: "IdwMFypqvNxti3YgvWWmfcNL26M="},
		{name: "node s3cr3t ' sig, ' URL", token: "s3cr3t", url: quoteSigned, sig: "GfI7onHX/KQ2k1oVS3cUTVk4IEw=", want: true, signedAs: quoteSigned},
		{name: "node s3cr3t ' sig, %27 URL", token: "s3cr3t", url: quoteEscaped, sig: "GfI7onHX/KQ2k1oVS3cUTVk4IEw=", want: true},
		{name: "node s3cr3t %27 sig, ' URL", token: "s3cr3t", url: quoteSigned, sig: "HkuXLxVQ7zHv9LmGpzlLuGaxhJY=", want: true},
		{name: "node s3cr3t %27 sig, %27 URL", token: "s3cr3t", url: quoteEscaped, sig: "HkuXLxVQ7zHv9LmGpzlLuGaxhJY=", want: true, signedAs: quoteEscaped},

		// §1.4, derived vectors.
		{name: "derived no-dedupe", url: fixURL, params: repeated, sig: "tM//N+MVWOh7+ol2z8YCNxSY0Eg="},
		{name: "derived unsorted values", url: fixURL, params: repeated, sig: "oNd5IjYjmops86rU2fr7navM88g="},
		{name: "derived GET status callback", url: getStatusURL, sig: "wYPbBimEwJS/OJK1/FXiWT3Tbl0=", want: true, signedAs: getStatusURL},
		{name: "derived fragment stripped", url: "https://example.com/twilio/video/status#rc=2&rp=all", sig: "cP84tA7pCi6SEuPcBS5Ph4gIXRo=", want: true, signedAs: "https://example.com/twilio/video/status"},
		{name: "derived Video callback", token: hookToken, url: videoURL, params: mustParse(t, videoBody), sig: videoSig, want: true, signedAs: videoURL},
		{name: "derived Video callback other visit", token: hookToken, url: strings.Replace(videoURL, "V-42", "V-43", 1), params: mustParse(t, videoBody), sig: videoSig},
		{name: "derived Voice callback", token: hookToken, url: voiceURL, params: mustParse(t, voiceBody), sig: voiceSig, want: true, signedAs: voiceURL},
		{name: "derived Voice callback signed with :443", token: hookToken, url: voiceURL, params: mustParse(t, voiceBody), sig: voiceSig443, want: true, signedAs: "https://hooks.example.com:443/twilio/voice/status"},
	}
}

func TestVectors(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			tok := v.token
			switch tok {
			case "":
				tok = token
			case "-":
				tok = ""
			}
			if v.json {
				if got := twiliosig.VerifyJSON(tok, v.url, []byte(v.body), v.sig); got != v.want {
					t.Errorf("VerifyJSON(%q, %q, %q, %q) = %v; want %v", tok, v.url, v.body, v.sig, got, v.want)
				}
			} else {
				if got := twiliosig.Verify(tok, v.url, v.params, v.sig); got != v.want {
					t.Errorf("Verify(%q, %q, %v, %q) = %v; want %v", tok, v.url, v.params, v.sig, got, v.want)
				}
			}
			if v.signedAs != "" {
				params := v.params
				if v.json {
					params = nil
				}
				if got := twiliosig.Sign(tok, v.signedAs, params); got != v.sig {
					t.Errorf("Sign(%q, %q, %v) = %q; want %q", tok, v.signedAs, params, got, v.sig)
				}
			}
		})
	}
}

// TestVerifyDoesNotMutateParams guards the dedupe/sort of repeated values:
// the caller's url.Values must come back untouched.
func TestVerifyDoesNotMutateParams(t *testing.T) {
	p := url.Values{"Digits": {"5678", "1234", "1234"}}
	twiliosig.Verify(token, fixURL, p, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")
	if got := strings.Join(p["Digits"], ","); got != "5678,1234,1234" {
		t.Errorf("after Verify, Digits = %q; want %q", got, "5678,1234,1234")
	}
}

func TestRequestURL(t *testing.T) {
	tests := []struct {
		base, target, want string
	}{
		{"https://hooks.example.com", "/twilio/video/status?visit=V-42", "https://hooks.example.com/twilio/video/status?visit=V-42"},
		{"https://hooks.example.com/", "/twilio/video/status?visit=V-42", "https://hooks.example.com/twilio/video/status?visit=V-42"},
		{"https://h.example.com/vf", "/twilio/voice/status", "https://h.example.com/vf/twilio/voice/status"},
		{"https://h.example.com/vf/", "/twilio/voice/status", "https://h.example.com/vf/twilio/voice/status"},
		// A proxy that forwards the prefix instead of stripping it.
		{"https://h.example.com/vf", "/vf/twilio/voice/status", "https://h.example.com/vf/twilio/voice/status"},
		// "/vfx" is not under the prefix "/vf".
		{"https://h.example.com/vf", "/vfx/status", "https://h.example.com/vf/vfx/status"},
		// Raw target kept: percent-encoding, ' and a doubled slash.
		{"HTTPS://Hooks.Example.com:443", "//a%2Fb/c?x=It's+%27q%27&y=%20", "HTTPS://Hooks.Example.com:443//a%2Fb/c?x=It's+%27q%27&y=%20"},
		// Absolute-form target, as sent to a forward proxy.
		{"https://hooks.example.com", "http://internal:8080/twilio/sms/status?a=1", "https://hooks.example.com/twilio/sms/status?a=1"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "http://internal:8080/", nil)
		r.RequestURI = tt.target
		r.Host = "attacker.example"
		if got := twiliosig.RequestURL(tt.base, r); got != tt.want {
			t.Errorf("RequestURL(%q, target %q) = %q; want %q", tt.base, tt.target, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	const base = "https://hooks.example.com"
	videoParams := mustParse(t, videoBody)
	tampered := strings.Replace(videoBody, "ParticipantStatus=connected", "ParticipantStatus=disconnected", 1)
	fragmentURL := videoURL + "#rc=2&rp=all&ct=1000"
	jsonBody := `{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}`
	jsonURL := base + "/twilio/video/status?visit=V-42&bodySHA256=5ccde7145dfb8f56479710896586cb9d5911809d83afbe34627818790db0aec9"

	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		token, base string
		method      string
		target      string
		host        string
		contentType string
		body        string
		sig         string // "" = header absent
		want        error
	}{
		{name: "Video form POST with ?visit=V-42", target: "/twilio/video/status?visit=V-42", body: videoBody, sig: videoSig},
		{name: "charset in content type", target: "/twilio/video/status?visit=V-42", contentType: form + "; charset=utf-8", body: videoBody, sig: videoSig},
		{name: "Host header ignored", target: "/twilio/video/status?visit=V-42", host: "10.0.0.7:8080", body: videoBody, sig: videoSig},
		{name: "Host header equal to public host ignored too", target: "/twilio/video/status?visit=V-42", host: "hooks.example.com", body: videoBody, sig: videoSig},
		{name: "base with trailing slash", base: base + "/", target: "/twilio/video/status?visit=V-42", body: videoBody, sig: videoSig},
		{name: "fragment-configured URL", target: "/twilio/video/status?visit=V-42", body: videoBody, sig: twiliosig.Sign(hookToken, fragmentURL, videoParams)},
		{name: "derived fragment vector via GET", token: token, base: "https://example.com", method: http.MethodGet, target: "/twilio/video/status", sig: "cP84tA7pCi6SEuPcBS5Ph4gIXRo="},
		{name: "derived GET status callback", token: token, base: "https://example.com", method: http.MethodGet, target: strings.TrimPrefix(getStatusURL, "https://example.com"), sig: "wYPbBimEwJS/OJK1/FXiWT3Tbl0="},
		{name: "Voice callback without port", target: "/twilio/voice/status", body: voiceBody, sig: voiceSig},
		{name: "Voice callback with :443", target: "/twilio/voice/status", body: voiceBody, sig: voiceSig443},
		{name: "path prefix base", base: "https://h.example.com/vf", target: "/twilio/video/status?visit=V-42", body: videoBody, sig: twiliosig.Sign(hookToken, "https://h.example.com/vf/twilio/video/status?visit=V-42", videoParams)},
		{name: "JSON with bodySHA256", target: strings.TrimPrefix(jsonURL, base), contentType: "application/json", body: jsonBody, sig: twiliosig.Sign(hookToken, jsonURL, nil)},

		{name: "tampered param", target: "/twilio/video/status?visit=V-42", body: tampered, sig: videoSig, want: twiliosig.ErrInvalid},
		{name: "missing header", target: "/twilio/video/status?visit=V-42", body: videoBody, want: twiliosig.ErrMissing},
		{name: "replayed to another visit", target: "/twilio/video/status?visit=V-43", body: videoBody, sig: videoSig, want: twiliosig.ErrInvalid},
		{name: "replayed to another route", target: "/twilio/voice/status?visit=V-42", body: videoBody, sig: videoSig, want: twiliosig.ErrInvalid},
		{name: "query dropped", target: "/twilio/video/status", body: videoBody, sig: videoSig, want: twiliosig.ErrInvalid},
		{name: "query params are not form params", target: "/twilio/video/status?visit=V-42", body: videoBody, sig: twiliosig.Sign(hookToken, videoURL, with(videoParams, "visit", "V-42")), want: twiliosig.ErrInvalid},
		{name: "wrong token", token: "fedcba9876543210fedcba9876543210", target: "/twilio/video/status?visit=V-42", body: videoBody, sig: videoSig, want: twiliosig.ErrInvalid},
		{name: "signed for the Host, not the public base", target: "/twilio/video/status?visit=V-42", host: "evil.example", body: videoBody, sig: twiliosig.Sign(hookToken, "https://evil.example/twilio/video/status?visit=V-42", videoParams), want: twiliosig.ErrInvalid},
		{name: "JSON tampered body", target: strings.TrimPrefix(jsonURL, base), contentType: "application/json", body: `{"CallSid":"CA1234567890ABCDF","Caller":"+12349013030"}`, sig: twiliosig.Sign(hookToken, jsonURL, nil), want: twiliosig.ErrInvalid},
		{name: "JSON without bodySHA256", target: "/twilio/video/status?visit=V-42", contentType: "application/json", body: jsonBody, sig: twiliosig.Sign(hookToken, videoURL, nil), want: twiliosig.ErrInvalid},
		{name: "body of unsigned type", target: "/twilio/video/status?visit=V-42", contentType: "text/plain", body: "RoomStatus=completed", sig: twiliosig.Sign(hookToken, videoURL, nil), want: twiliosig.ErrInvalid},
		{name: "malformed form body", target: "/twilio/video/status?visit=V-42", body: "a=%zz", sig: videoSig, want: twiliosig.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, b, method, ct := tt.token, tt.base, tt.method, tt.contentType
			if tok == "" {
				tok = hookToken
			}
			if b == "" {
				b = base
			}
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" && method == http.MethodPost {
				ct = form
			}
			r := httptest.NewRequest(method, tt.target, strings.NewReader(tt.body))
			if tt.host != "" {
				r.Host = tt.host
			}
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			if tt.sig != "" {
				r.Header.Set(twiliosig.Header, tt.sig)
			}
			err := twiliosig.Check(tok, b, r, []byte(tt.body))
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Errorf("Check(%s %s, base %q) = %v; want %v", method, tt.target, b, err, tt.want)
			}
		})
	}
}

// TestCheckAnyAcceptsEachTokenOfARotation uses vectors signed with two
// different tokens (the derived Video vector with hookToken, the SDK suites'
// fixture with "12345"): with both tokens configured, in either order, each
// is accepted; a token neither signed with is refused.
func TestCheckAnyAcceptsEachTokenOfARotation(t *testing.T) {
	const base = "https://hooks.example.com"
	video := func(sig string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/twilio/video/status?visit=V-42", strings.NewReader(videoBody))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			r.Header.Set(twiliosig.Header, sig)
		}
		return r
	}
	sdkBody := fixParams().Encode()
	sdk := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/myapp.php?foo=1&bar=2", strings.NewReader(sdkBody))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set(twiliosig.Header, sig1)
		return r
	}
	const random = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
	tests := []struct {
		name   string
		tokens []string
		r      *http.Request
		base   string
		body   string
		want   error
	}{
		{"video vector, its token first", []string{hookToken, token}, video(videoSig), base, videoBody, nil},
		{"video vector, its token second", []string{token, hookToken}, video(videoSig), base, videoBody, nil},
		{"SDK vector, its token second", []string{hookToken, token}, sdk(), "https://mycompany.com", sdkBody, nil},
		{"SDK vector, its token first", []string{token, "", hookToken}, sdk(), "https://mycompany.com", sdkBody, nil},
		{"signed with neither", []string{token, hookToken}, video(twiliosig.Sign(random, videoURL, mustParse(t, videoBody))), base, videoBody, twiliosig.ErrInvalid},
		{"neither token signed it", []string{random, token}, video(videoSig), base, videoBody, twiliosig.ErrInvalid},
		{"no token configured", []string{"", ""}, video(videoSig), base, videoBody, twiliosig.ErrInvalid},
		{"missing header", []string{hookToken, token}, video(""), base, videoBody, twiliosig.ErrMissing},
	}
	for _, tt := range tests {
		err := twiliosig.CheckAny(tt.tokens, tt.base, tt.r, []byte(tt.body))
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%s: CheckAny = %v; want %v", tt.name, err, tt.want)
		}
	}
}

// TestCheckThroughServer sends signed requests over a real connection so the
// request target and Host come from the wire, as they will in production.
func TestCheckThroughServer(t *testing.T) {
	const base = "https://hooks.example.com"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		switch err := twiliosig.Check(hookToken, base, r, body); {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, twiliosig.ErrMissing):
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()

	post := func(path, body, sig string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			req.Header.Set(twiliosig.Header, sig)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		path, body, sig string
		want            int
	}{
		{"/twilio/video/status?visit=V-42", videoBody, videoSig, http.StatusNoContent},
		{"/twilio/video/status?visit=V-42", strings.Replace(videoBody, "group", "go", 1), videoSig, http.StatusForbidden},
		{"/twilio/video/status?visit=V-42", videoBody, "", http.StatusUnauthorized},
		{"/twilio/video/status?visit=V-1", videoBody, videoSig, http.StatusForbidden},
		{"/twilio/voice/status", voiceBody, voiceSig443, http.StatusNoContent},
	}
	for _, tt := range tests {
		if got := post(tt.path, tt.body, tt.sig); got != tt.want {
			t.Errorf("POST %s (sig %q) = %d; want %d", tt.path, tt.sig, got, tt.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(token, fixURL, "Digits", "1234", "CallSid", "CA1234567890ABCDE", sig1)
	f.Add(token, "https://user:pass@MyCompany.com:1234//a%2Fb?x=It's#frag", "a", "", "a", "b", "")
	f.Add("k", "http://[::1]:80/p?q=%27", "", "", "b", "ñ", "not base64")
	f.Add("k", "https:/no-authority", "k", "v", "k", "v", "AAAA")
	f.Fuzz(func(t *testing.T, tok, rawURL, k1, v1, k2, v2, sig string) {
		params := url.Values{}
		params.Add(k1, v1)
		params.Add(k2, v2)
		params.Add(k1, v2)

		// Arbitrary input must never panic.
		twiliosig.Verify(tok, rawURL, params, sig)
		twiliosig.VerifyJSON(tok, rawURL, []byte(v1), sig)

		if tok == "" {
			return // empty tokens never verify by design
		}
		s := twiliosig.Sign(tok, rawURL, params)
		if !twiliosig.Verify(tok, rawURL, params, s) {
			t.Errorf("Verify(%q, %q, %v, Sign(...) = %q) = false; want true", tok, rawURL, params, s)
		}
		// Any other signature is rejected (barring an HMAC-SHA1 collision
		// with one of the URL variants).
		flipped := []byte(s)
		flipped[0] ^= 1
		if twiliosig.Verify(tok, rawURL, params, string(flipped)) {
			t.Errorf("Verify(%q, %q, %v, %q) = true; want false (Sign gave %q)", tok, rawURL, params, flipped, s)
		}

		// JSON round trip: the URL carries the body hash and signs alone.
		plain, _, _ := strings.Cut(rawURL, "#")
		plain, _, _ = strings.Cut(plain, "?")
		sum := sha256.Sum256([]byte(v1))
		ju := plain + "?bodySHA256=" + hex.EncodeToString(sum[:])
		js := twiliosig.Sign(tok, ju, nil)
		if !twiliosig.VerifyJSON(tok, ju, []byte(v1), js) {
			t.Errorf("VerifyJSON(%q, %q, %q, Sign(...) = %q) = false; want true", tok, ju, v1, js)
		}
		if twiliosig.VerifyJSON(tok, ju, []byte(v1+"x"), js) {
			t.Errorf("VerifyJSON(%q, %q, %q, %q) = true for a changed body; want false", tok, ju, v1+"x", js)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	params := mustParse(b, videoBody)
	if !twiliosig.Verify(hookToken, videoURL, params, videoSig) {
		b.Fatalf("Verify(Video callback) = false; want true")
	}
	b.ReportAllocs()
	for b.Loop() {
		twiliosig.Verify(hookToken, videoURL, params, videoSig)
	}
}

func ExampleVerify() {
	params := url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
	u := "https://mycompany.com/myapp.php?foo=1&bar=2"
	fmt.Println(twiliosig.Verify("12345", u, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="))
	fmt.Println(twiliosig.Verify("12345", u+"#rc=2", params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="))
	fmt.Println(twiliosig.Verify("12345", u+"&x=1", params, "RSOYDt4T1cUTdK1PDd93/VVr8B8="))
	// Output:
	// true
	// true
	// false
}

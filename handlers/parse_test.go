package handlers_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/visitflow/visitflow/handlers"
)

func TestParseVideoEventReadsEveryParameter(t *testing.T) {
	body := "AccountSid=AC00000000000000000000000000000000&ParticipantIdentity=interpreter-line&ParticipantSid=PA00000000000000000000000000000002&ParticipantStatus=disconnected&ParticipantDuration=125&RoomName=visit-V-42&RoomSid=RM00000000000000000000000000000001&RoomStatus=in-progress&RoomType=group&SequenceNumber=7&StatusCallbackEvent=participant-disconnected&Timestamp=2025-10-27T18%3A16%3A01.876Z&TrackSid=MT1&TrackKind=audio"
	v, _ := url.ParseQuery(body)
	ev, err := handlers.ParseVideoEvent(v)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 10, 27, 18, 16, 1, 876e6, time.UTC)
	if !ev.Timestamp.Equal(want) || ev.ParticipantDuration != 125*time.Second || ev.SequenceNumber != 7 ||
		ev.RoomName != "visit-V-42" || ev.ParticipantSID != "PA00000000000000000000000000000002" ||
		ev.TrackKind != "audio" || ev.RoomType != "group" {
		t.Fatalf("ParseVideoEvent() = %+v", ev)
	}
}

func TestParseVoiceEventReadsRFC2822(t *testing.T) {
	body := "AccountSid=AC00000000000000000000000000000000&ApiVersion=2010-04-01&CallSid=CA11111111111111111111111111111111&CallStatus=completed&CallbackSource=call-progress-events&Called=%2B15005550006&Caller=%2B15005550001&Direction=outbound-api&From=%2B15005550001&SequenceNumber=3&Timestamp=Sun%2C+25+Mar+2018+09%3A53%3A19+%2B0000&To=%2B15005550006&CallDuration=42&SipResponseCode=200&AnsweredBy=human"
	v, _ := url.ParseQuery(body)
	ev, err := handlers.ParseVoiceEvent(v)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Timestamp.Equal(time.Date(2018, 3, 25, 9, 53, 19, 0, time.UTC)) || ev.CallDuration != 42*time.Second ||
		ev.SipResponseCode != 200 || ev.AnsweredBy != "human" || ev.Direction != "outbound-api" {
		t.Fatalf("ParseVoiceEvent() = %+v", ev)
	}
	v.Set("CallDuration", "forty")
	if _, err := handlers.ParseVoiceEvent(v); err == nil || err.Error() != "CallDuration: must be an integer" {
		t.Fatalf("bad CallDuration: err = %v; want it named", err)
	}
}

// FuzzParseCallbacks: any form either parses or yields an error naming a
// field; it never panics.
func FuzzParseCallbacks(f *testing.F) {
	f.Add("StatusCallbackEvent=participant-connected&RoomName=r&ParticipantSid=PA1&ParticipantIdentity=x&Timestamp=2025-10-27T18%3A16%3A01.876Z")
	f.Add("CallSid=CA1&CallStatus=ringing&Timestamp=Sun%2C+25+Mar+2018+09%3A53%3A19+%2B0000&SequenceNumber=x")
	f.Fuzz(func(t *testing.T, body string) {
		v, err := url.ParseQuery(body)
		if err != nil {
			return
		}
		if _, err := handlers.ParseVideoEvent(v); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
		if _, err := handlers.ParseVoiceEvent(v); err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

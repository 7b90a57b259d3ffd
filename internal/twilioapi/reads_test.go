package twilioapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/twilioapi"
)

// The reads reconciliation and settling rely on, through twilio-go against
// the emulator: what was sent to a number since a moment (paged, newest
// first, queued ones included), what was dialled, and a room with everyone
// who was in it.
func TestReadsAgainstEmulator(t *testing.T) {
	c := newClient(t, twilioapi.Config{AccountSID: account, AuthToken: token, FromNumber: from, APIURL: emulator(t)})
	cx := ctx(t)
	since := time.Now().Add(-time.Second)
	const to = "+15551230002"
	for i := range 60 { // more than one page of 50
		if _, err := c.SendSMS(cx, twilioapi.SendSMSParams{To: to, Body: fmt.Sprintf("reminder %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.SendSMS(cx, twilioapi.SendSMSParams{To: "+15551230009", Body: "someone else"}); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.MessagesSentTo(cx, to, since)
	if err != nil {
		t.Fatalf("MessagesSentTo: %v", err)
	}
	if len(msgs) != 50 || msgs[0].Body != "reminder 59" {
		t.Fatalf("MessagesSentTo = %d messages, first %+v; want the newest 50, newest first", len(msgs), msgs[0])
	}
	for _, m := range msgs {
		if m.SID == "" || m.CreatedAt == nil || m.CreatedAt.Before(since.Truncate(time.Second)) {
			t.Fatalf("message %+v; want a SID and a creation time after %v", m, since)
		}
	}
	if later, err := c.MessagesSentTo(cx, to, time.Now().Add(time.Hour)); err != nil || len(later) != 0 {
		t.Fatalf("MessagesSentTo(an hour ahead) = %d, %v; want none", len(later), err)
	}

	call, err := c.CreateCall(cx, twilioapi.CreateCallParams{To: "+15551230003", Twiml: `<Response><Pause length="600"/></Response>`})
	if err != nil {
		t.Fatal(err)
	}
	calls, err := c.CallsPlacedTo(cx, "+15551230003", since)
	if err != nil || len(calls) != 1 || calls[0].SID != call.SID {
		t.Fatalf("CallsPlacedTo = %+v, %v; want the one call %s", calls, err, call.SID)
	}
	if err := c.HangUp(cx, call.SID); err != nil {
		t.Fatal(err)
	}
	rep, err := c.CallReport(cx, call.SID)
	if err != nil || (rep.Status != "completed" && rep.Status != "canceled") || rep.EndedAt == nil {
		t.Fatalf("CallReport = %+v, %v; want ended (completed or canceled) with an end time", rep, err)
	}

	room, err := c.CreateRoom(cx, twilioapi.CreateRoomParams{UniqueName: "visit-V-8", UnusedRoomTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.RoomReport(cx, room.SID)
	if err != nil || r.Ended() || r.Name != "visit-V-8" || len(r.Participants) != 0 {
		t.Fatalf("RoomReport = %+v, %v; want the open, empty room", r, err)
	}
	if err := c.EndRoom(cx, room.SID); err != nil {
		t.Fatal(err)
	}
	if r, err = c.RoomReport(cx, room.SID); err != nil || !r.Ended() || r.EndedAt == nil {
		t.Fatalf("RoomReport after the end = %+v, %v; want completed with an end time", r, err)
	}
}

package board_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/visitflow/visitflow/workflows"
)

// TestBoardShowsAPhonePatientAsPatientPhone: a patient who dialed in is
// "patient (phone)" on the board, in the waiting list and among the
// visit's participants, so nobody takes the caller for the patient on video.
func TestBoardShowsAPhonePatientAsPatientPhone(t *testing.T) {
	e := newBoardEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if _, _, err := e.Engine.CreateVisit(ctx, workflows.CreateInput{
		ID: "V-ph", ScheduledAt: now.Add(-2 * time.Minute).Truncate(time.Second).Format(time.RFC3339),
		Provider: workflows.PersonInput{Identity: "dr-lee"}, Patient: workflows.PersonInput{Identity: "pat-8812"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Engine.ApplyVideo(ctx, workflows.VideoEvent{
		VisitHint: "V-ph", Event: workflows.EventParticipantConnected, RoomName: "visit-V-ph",
		RoomSID: "RM00000000000000000000000000000001", Timestamp: now,
		ParticipantSID: "PA00000000000000000000000000000001", ParticipantIdentity: "dialin-V-ph",
		ParticipantStatus: "connected",
	}); err != nil {
		t.Fatal(err)
	}
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(adminUser+":"+adminPass))
	for _, path := range []string{"/admin/visits", "/admin/visits/V-ph"} {
		resp, body := e.Do(http.MethodGet, path, nil, "Authorization", auth)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		if !strings.Contains(string(body), "patient (phone)") {
			t.Errorf("GET %s does not say \"patient (phone)\":\n%s", path, body)
		}
	}
}

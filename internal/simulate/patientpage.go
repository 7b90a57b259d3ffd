package simulate

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// The patient's page: every play prints the join link of its visit, and the
// waiting-room scenario leaves the patient's part to a person with a
// browser while it plays the provider.

// joinLinkPattern finds the join link in an SMS text.
var joinLinkPattern = regexp.MustCompile(`https?://\S+/join/[A-Za-z0-9_-]+`)

// joinLinkWait bounds how long a play waits for the visit's first patient
// SMS with a link (a visit starting within the smallest reminder offset
// gets its starting-soon SMS at once; others have none yet).
const joinLinkWait = 3 * time.Second

// showJoinLink prints the join link that the visit's patient SMS carries,
// so a person can open the patient's page while the scenario plays.
func (s *simulation) showJoinLink(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, joinLinkWait)
	defer cancel()
	e, err := s.awaitEntry(wctx, func(e visit.Entry) bool {
		return strings.HasPrefix(e.Type, "sms-") && strings.HasPrefix(e.Summary, "reminder:") && strings.Contains(e.Summary, "(SM")
	})
	if err != nil {
		s.say("(no patient SMS with a join link yet)")
		return
	}
	sid := ""
	if i := strings.LastIndex(e.Summary, "("); i >= 0 {
		sid = strings.TrimSuffix(e.Summary[i+1:], ")")
	}
	if link := joinLinkPattern.FindString(s.messageBody(ctx, sid)); link != "" {
		s.say("the patient's join link (open it in a browser): %s", link)
	}
}

// waitingRoomScenarios are the stories a person plays the patient in.
func waitingRoomScenarios() []Scenario {
	return []Scenario{{
		Name:       "waiting-room",
		About:      "you play the patient: open the printed join link, join; the provider comes 5s later and ends the visit after 10s",
		Want:       visit.Completed,
		MinTimeout: 10 * time.Minute,
		steps: []step{
			{Say: "waiting for you: open the join link above and tap \"Join the visit\"", Do: awaitPatient, Then: visit.Waiting},
			{Say: "you are in the waiting room; the provider comes in 5s", Do: pause(5 * time.Second), Then: visit.Waiting},
			join(visit.RoleProvider, visit.InProgress),
			{Say: "the visit goes on for 10s", Do: pause(10 * time.Second), Then: visit.InProgress},
			endVisit(visit.Completed),
		},
	}}
}

// awaitPatient waits, as long as the play may last, for the patient to
// join from the page.
func awaitPatient(ctx context.Context, s *simulation) error {
	return s.awaitState(ctx, visit.Waiting)
}

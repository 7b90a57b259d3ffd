package simulate

import (
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// roomScenarios are the Video room scenarios: people joining and leaving the
// visit's Group Room, and the room ending.
func roomScenarios() []Scenario {
	patient, provider := visit.RolePatient, visit.RoleProvider
	return []Scenario{
		{
			Name:  "happy",
			About: "the patient waits, the provider joins, they talk, both leave, the room ends",
			Want:  visit.Completed,
			steps: []step{
				join(patient, visit.Waiting),
				join(provider, visit.InProgress),
				leave(provider, visit.Waiting),
				leave(patient, visit.Interrupted),
				endRoom(visit.Completed),
			},
		},
		{
			Name:  "late-provider",
			About: "the patient waits in the virtual waiting room until the provider finally joins",
			Want:  visit.Completed,
			steps: []step{
				join(patient, visit.Waiting),
				{Say: "the provider is late: the patient waits 2s in the waiting room", Do: pause(2 * time.Second), Then: visit.Waiting},
				join(provider, visit.InProgress),
				leave(patient, visit.ProviderWaiting),
				leave(provider, visit.Interrupted),
				endRoom(visit.Completed),
			},
		},
		{
			Name:  "no-show",
			About: "the provider waits, the patient never comes, the room ends",
			Want:  visit.NoShow,
			steps: []step{
				join(provider, visit.ProviderWaiting),
				leave(provider, visit.Interrupted),
				endRoom(visit.NoShow),
			},
		},
		{
			Name:  "dropped-call",
			About: "the patient's connection drops mid-visit and comes back",
			Want:  visit.Completed,
			steps: []step{
				join(patient, visit.Waiting),
				join(provider, visit.InProgress),
				{Say: "the patient's connection drops", Do: leaveDo(patient), Then: visit.ProviderWaiting},
				{Say: "the patient reconnects", Do: joinDo(patient), Then: visit.InProgress},
				leave(patient, visit.ProviderWaiting),
				leave(provider, visit.Interrupted),
				endRoom(visit.Completed),
			},
		},
	}
}

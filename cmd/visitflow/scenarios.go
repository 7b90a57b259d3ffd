package main

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// roomScenarios are the Video room scenarios: people joining and leaving the
// visit's Group Room, and the room ending.
func roomScenarios() []scenario {
	patient, provider := visit.RolePatient, visit.RoleProvider
	return []scenario{
		{
			Name:  "happy",
			About: "the patient waits, the provider joins, they talk, both leave, the room ends",
			Want:  visit.Completed,
			Steps: []step{
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
			Steps: []step{
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
			Steps: []step{
				join(provider, visit.ProviderWaiting),
				leave(provider, visit.Interrupted),
				endRoom(visit.NoShow),
			},
		},
		{
			Name:  "dropped-call",
			About: "the patient's connection drops mid-visit and comes back",
			Want:  visit.Completed,
			Steps: []step{
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

// join is "role joins the room", then the visit must be in state then.
func join(role visit.Role, then visit.State) step {
	return step{Say: "the " + string(role) + " joins the room", Do: joinDo(role), Then: then}
}

// leave is "role leaves the room", then the visit must be in state then.
func leave(role visit.Role, then visit.State) step {
	return step{Say: "the " + string(role) + " leaves the room", Do: leaveDo(role), Then: then}
}

// endRoom ends the room through the emulator's REST API.
func endRoom(then visit.State) step {
	return step{Say: "the room is ended (Twilio REST, Status=completed)",
		Do: func(ctx context.Context, s *simulation) error { return s.EndRoom(ctx) }, Then: then}
}

func joinDo(role visit.Role) func(context.Context, *simulation) error {
	return func(ctx context.Context, s *simulation) error {
		return s.Control(ctx, http.MethodPost, "/rooms/"+url.PathEscape(s.Visit.Room.Name)+"/participants",
			map[string]string{"identity": s.Identity(role)}, nil)
	}
}

func leaveDo(role visit.Role) func(context.Context, *simulation) error {
	return func(ctx context.Context, s *simulation) error {
		return s.Control(ctx, http.MethodDelete,
			"/rooms/"+url.PathEscape(s.Visit.Room.Name)+"/participants/"+url.PathEscape(s.Identity(role)), nil, nil)
	}
}

// pause lets time pass (a demo shows waiting; nothing depends on it).
func pause(d time.Duration) func(context.Context, *simulation) error {
	return func(ctx context.Context, _ *simulation) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

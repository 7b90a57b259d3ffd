package simulate

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/visitflow/visitflow/internal/visit"
)

// Compressed time for the reminders scenario: with the default offsets
// [24h, 1h, 10m] a visit scheduled 10m+reminderLead ahead has its 10m
// reminder due in reminderLead (24h and 1h are already past, so skipped);
// moved to 1h+reminderLead ahead, its new 1h reminder is due as soon.
const reminderLead = 3 * time.Second

// daytimeZones are candidate visit time zones, about three hours apart, so
// one of them is always in the daytime.
func daytimeZones() []string {
	return []string{"America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Asia/Tokyo",
		"Asia/Shanghai", "Asia/Kolkata", "Asia/Dubai", "Europe/Berlin", "Europe/London",
		"America/Sao_Paulo", "Australia/Sydney", "Pacific/Auckland"}
}

// daytimeZone picks a zone where now is between 09:00 and 20:00, well
// outside the default quiet hours (21:00–08:00), which would move the
// reminders out of the compressed timeline.
func daytimeZone(now time.Time) string {
	for _, name := range daytimeZones() {
		loc, err := time.LoadLocation(name)
		if err != nil {
			continue
		}
		if h := now.In(loc).Hour(); h >= 9 && h < 20 {
			return name
		}
	}
	return "UTC"
}

// reminderScenarios: reminders and a reschedule in compressed time. They
// rely on the server's default reminder offsets and quiet hours.
func reminderScenarios() []Scenario {
	return []Scenario{{
		Name:       "reminders",
		About:      "the 10m reminder goes out, the visit is moved an hour later, the new schedule's 1h reminder goes out; then it is cancelled",
		Want:       visit.Cancelled,
		scheduleIn: 10*time.Minute + reminderLead,
		timezone:   daytimeZone,
		steps: []step{
			{Say: "the visit is scheduled 10m03s ahead: with visits.reminder_offsets [24h, 1h, 10m] the 10m reminder is due in 3s",
				Do: firstReminder, Then: visit.Scheduled},
			{Say: "the visit is moved about an hour later (PATCH /v1/visits/{id} scheduled_at)", Do: reschedule, Then: visit.Scheduled},
			{Say: "the new schedule's 1h reminder is due in 3s", Do: secondReminder, Then: visit.Scheduled},
			{Say: "the visit is cancelled (POST /v1/visits/{id}/cancel)", Then: visit.Cancelled,
				Do: func(ctx context.Context, s *simulation) error {
					return s.API(ctx, http.MethodPost, s.visitPath("/cancel"), nil, nil)
				}},
		},
	}}
}

func firstReminder(ctx context.Context, s *simulation) error {
	loc, err := time.LoadLocation(s.Visit.Timezone)
	if err != nil {
		return fmt.Errorf("visit time zone %q: %w", s.Visit.Timezone, err)
	}
	s.say("  time zone %s, where it is %s now: outside visits.quiet_hours (21:00–08:00), so no reminder moves",
		s.Visit.Timezone, time.Now().In(loc).Format("15:04"))
	return s.showReminder(ctx, "reminder:r10m0s:s0")
}

// reschedule moves the visit to 1h+reminderLead from now: a new schedule
// generation (s1) whose jobs replace the old one's.
func reschedule(ctx context.Context, s *simulation) error {
	at := time.Now().Add(time.Hour + reminderLead).UTC().Format(time.RFC3339)
	if err := s.API(ctx, http.MethodPatch, s.visitPath(""), map[string]string{"scheduled_at": at}, nil); err != nil {
		return err
	}
	e, err := s.awaitEntry(ctx, entryOf("rescheduled", "rescheduled"))
	if err != nil {
		return fmt.Errorf("no rescheduled entry: %w", err)
	}
	s.say("  %s; the old schedule's pending jobs (its no-show check) are deleted from the queue, and a stale job would find the schedule moved on and do nothing", e.Summary)
	return nil
}

// secondReminder waits for the new schedule's reminder and checks that no
// other reminder of the old schedule went out.
func secondReminder(ctx context.Context, s *simulation) error {
	if err := s.showReminder(ctx, "reminder:r1h0m0s:s1"); err != nil {
		return err
	}
	for _, e := range s.Visit.Timeline {
		if strings.HasPrefix(e.Type, "sms-") && strings.HasPrefix(e.Summary, "reminder:") && strings.Contains(e.Summary, ":s0 ") &&
			!strings.HasPrefix(e.Summary, "reminder:r10m0s:s0 ") {
			return fmt.Errorf("an old schedule's reminder was sent after the reschedule: %s", e.Summary)
		}
	}
	return nil
}

// showReminder waits until the reminder SMS purpose was accepted by Twilio
// and prints its text as the emulator received it.
func (s *simulation) showReminder(ctx context.Context, purpose string) error {
	// Whichever the server recorded first: the worker's "accepted" or the
	// status callback's "confirmed"/"queued" (they race).
	e, err := s.awaitEntry(ctx, func(e visit.Entry) bool {
		return strings.HasPrefix(e.Type, "sms-") && strings.HasPrefix(e.Summary, purpose+" SMS ") && strings.Contains(e.Summary, "(SM")
	})
	if err != nil {
		return fmt.Errorf("%s was never sent: %w", purpose, err)
	}
	sid := ""
	if i := strings.LastIndex(e.Summary, "("); i >= 0 {
		sid = strings.TrimSuffix(e.Summary[i+1:], ")")
	}
	s.say("  %s sent (%s): %q", purpose, sid, s.messageBody(ctx, sid))
	return nil
}

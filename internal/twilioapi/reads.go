package twilioapi

import (
	"context"
	"net/url"
	"time"

	api "github.com/twilio/twilio-go/rest/api/v2010"
	video "github.com/twilio/twilio-go/rest/video/v1"
)

// The reads that make Twilio's REST API the truth visitflow converges to:
// what a room, its participants and a call are now (reconciliation), and
// what was sent or dialled recently (settling a request whose answer was
// lost). Callbacks are hints; these are the facts.

// RoomReport is a room and everyone who was ever in it, as Twilio reports them.
type RoomReport struct {
	SID, Name, Status string // Status: in-progress, completed or failed
	EndedAt           *time.Time
	Participants      []ParticipantReport
}

// Ended reports whether Twilio has closed the room.
func (r RoomReport) Ended() bool { return r.Status == "completed" || r.Status == "failed" }

// ParticipantReport is one connection (one ParticipantSid) to a room.
type ParticipantReport struct {
	SID, Identity, Status string // Status: connected or disconnected
	StartedAt, EndedAt    *time.Time
	Duration              time.Duration
}

// reportPageLimit bounds one participants listing: a visit's room holds a
// handful of connections; a runaway list must not become unbounded work.
const reportPageLimit = 500

// RoomReport fetches room sid and lists its participants, connected and
// disconnected (two requests; twilio-go follows the pages).
func (c *Client) RoomReport(ctx context.Context, sid string) (RoomReport, error) {
	var rep RoomReport
	err := c.do(ctx, "fetch room", sid, func(s services) error {
		r, err := s.video.FetchRoom(url.PathEscape(sid))
		if r != nil {
			rep = RoomReport{SID: deref(r.Sid), Name: deref(r.UniqueName), Status: deref(r.Status), EndedAt: utc(r.EndTime)}
		}
		return err
	})
	if err != nil {
		return RoomReport{}, err
	}
	err = c.do(ctx, "list participants", sid, func(s services) error {
		ps, err := s.video.ListRoomParticipant(url.PathEscape(rep.SID),
			(&video.ListRoomParticipantParams{}).SetPageSize(100).SetLimit(reportPageLimit))
		for _, p := range ps {
			pr := ParticipantReport{SID: deref(p.Sid), Identity: deref(p.Identity), Status: deref(p.Status),
				StartedAt: utc(p.StartTime), EndedAt: utc(p.EndTime)}
			if p.Duration != nil {
				pr.Duration = time.Duration(*p.Duration) * time.Second
			}
			rep.Participants = append(rep.Participants, pr)
		}
		return err
	})
	if err != nil {
		return RoomReport{}, err
	}
	return rep, nil
}

// CallReport is a call as Twilio reports it.
type CallReport struct {
	SID, Status, AnsweredBy string
	EndedAt                 *time.Time
	Duration                time.Duration
}

// CallReport fetches call sid.
func (c *Client) CallReport(ctx context.Context, sid string) (CallReport, error) {
	var rep CallReport
	err := c.do(ctx, "fetch call", sid, func(s services) error {
		r, err := s.api.FetchCall(sid, nil)
		if r != nil {
			rep = callReportOf(r)
		}
		return err
	})
	return rep, err
}

func callReportOf(r *api.ApiV2010Call) CallReport {
	rep := CallReport{SID: deref(r.Sid), Status: deref(r.Status), AnsweredBy: deref(r.AnsweredBy),
		EndedAt: parseRFC2822(deref(r.EndTime))}
	if d, err := time.ParseDuration(deref(r.Duration) + "s"); err == nil && deref(r.Duration) != "" {
		rep.Duration = d
	}
	return rep
}

// SentMessage is a message Twilio holds. Body is PHI: compare it, never log it.
type SentMessage struct {
	SID, Status, Body string
	CreatedAt         *time.Time
}

// recentLimit bounds the listings that settle a lost answer: one page of
// one number's newest traffic.
const recentLimit = 50

// MessagesSentTo lists the messages created for the number to since since,
// newest first. It does not filter by DateSent: a message Twilio accepted
// but still queues has no date_sent and would be missed, which is exactly
// the message a lost answer leaves in doubt. The newest page is enough: the
// window is minutes, and Twilio lists newest first.
func (c *Client) MessagesSentTo(ctx context.Context, to string, since time.Time) ([]SentMessage, error) {
	var out []SentMessage
	err := c.do(ctx, "list messages", "", func(s services) error {
		ms, err := s.api.ListMessage((&api.ListMessageParams{}).SetTo(to).SetPageSize(recentLimit).SetLimit(recentLimit))
		for _, m := range ms {
			created := parseRFC2822(deref(m.DateCreated))
			if created != nil && created.Before(since) {
				continue
			}
			out = append(out, SentMessage{SID: deref(m.Sid), Status: deref(m.Status), Body: deref(m.Body), CreatedAt: created})
		}
		return err
	})
	return out, err
}

// PlacedCall is a call Twilio holds.
type PlacedCall struct {
	CallReport
	CreatedAt *time.Time
}

// CallsPlacedTo lists the calls created to the number to since since,
// newest first; like MessagesSentTo it does not filter by StartTime, which
// a queued call does not have yet.
func (c *Client) CallsPlacedTo(ctx context.Context, to string, since time.Time) ([]PlacedCall, error) {
	var out []PlacedCall
	err := c.do(ctx, "list calls", "", func(s services) error {
		cs, err := s.api.ListCall((&api.ListCallParams{}).SetTo(to).SetPageSize(recentLimit).SetLimit(recentLimit))
		for i := range cs {
			created := parseRFC2822(deref(cs[i].DateCreated))
			if created != nil && created.Before(since) {
				continue
			}
			out = append(out, PlacedCall{CallReport: callReportOf(&cs[i]), CreatedAt: created})
		}
		return err
	})
	return out, err
}

func utc(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// parseRFC2822 reads the 2010-04-01 API's dates ("Tue, 10 Aug 2010 08:02:17 +0000").
func parseRFC2822(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC1123Z, s)
	if err != nil {
		return nil
	}
	t = t.UTC()
	return &t
}

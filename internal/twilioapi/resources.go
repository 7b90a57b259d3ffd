package twilioapi

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/twilio/twilio-go/client/jwt"
	api "github.com/twilio/twilio-go/rest/api/v2010"
	video "github.com/twilio/twilio-go/rest/video/v1"

	"github.com/visitflow/visitflow/internal/visit"
)

// Room is a Video room as Twilio reports it.
type Room struct {
	SID, UniqueName, Status string
	// StatusCallback is where Twilio reports on the room; empty for an
	// ad-hoc room a client created by connecting.
	StatusCallback string
}

// CreateRoomParams describe a Group Room.
type CreateRoomParams struct {
	UniqueName     string
	StatusCallback string
	// EmptyRoomTimeout and UnusedRoomTimeout are sent in whole minutes,
	// rounded up and clamped to 1..60; zero leaves Twilio's default (5).
	EmptyRoomTimeout, UnusedRoomTimeout time.Duration
	MaxParticipants                     int // 0: Twilio's default
}

func roomOf(r *video.VideoV1Room) Room {
	if r == nil {
		return Room{}
	}
	return Room{SID: deref(r.Sid), UniqueName: deref(r.UniqueName), Status: deref(r.Status),
		StatusCallback: deref(r.StatusCallback)}
}

// CreateRoom creates a Group Room with a POST status callback. When Twilio
// answers 53113 (an in-progress room has that UniqueName) it returns that
// room, so creating is idempotent.
func (c *Client) CreateRoom(ctx context.Context, p CreateRoomParams) (Room, error) {
	params := &video.CreateRoomParams{Type: ptr("group")}
	if p.UniqueName != "" {
		params.UniqueName = ptr(p.UniqueName)
	}
	if p.StatusCallback != "" {
		params.StatusCallback = ptr(p.StatusCallback)
		params.StatusCallbackMethod = ptr("POST")
	}
	if p.EmptyRoomTimeout > 0 {
		params.EmptyRoomTimeout = ptr(minutes(p.EmptyRoomTimeout))
	}
	if p.UnusedRoomTimeout > 0 {
		params.UnusedRoomTimeout = ptr(minutes(p.UnusedRoomTimeout))
	}
	if p.MaxParticipants > 0 {
		params.MaxParticipants = ptr(p.MaxParticipants)
	}
	var room Room
	err := c.do(ctx, "create room", "", func(s services) error {
		r, err := s.video.CreateRoom(params)
		room = roomOf(r)
		return err
	})
	if Code(err) == CodeRoomExists && p.UniqueName != "" {
		return c.FetchRoom(ctx, p.UniqueName)
	}
	return room, err
}

// FetchRoom fetches a room by SID, or by UniqueName while it is in progress.
func (c *Client) FetchRoom(ctx context.Context, sidOrName string) (Room, error) {
	var room Room
	err := c.do(ctx, "fetch room", sidOrName, func(s services) error {
		r, err := s.video.FetchRoom(url.PathEscape(sidOrName))
		room = roomOf(r)
		return err
	})
	return room, err
}

// EndRoom completes a room, disconnecting everybody. A room that has already
// ended is not an error.
func (c *Client) EndRoom(ctx context.Context, sid string) error {
	err := c.do(ctx, "end room", sid, func(s services) error {
		_, err := s.video.UpdateRoom(url.PathEscape(sid), &video.UpdateRoomParams{Status: ptr("completed")})
		return err
	})
	if Permanent(err) {
		if r, ferr := c.FetchRoom(ctx, sid); ferr == nil && r.Status == "completed" {
			return nil
		}
	}
	return err
}

// Call is a Voice call as Twilio reports it.
type Call struct {
	SID, Status string
}

// CreateCallParams describe an outbound call. One of URL and Twiml is needed.
type CreateCallParams struct {
	To, From string // From defaults to Config.FromNumber
	URL      string
	Twiml    string
	// StatusCallback receives (POST) the StatusCallbackEvents: initiated,
	// ringing, answered, completed; each is sent as its own form field.
	StatusCallback       string
	StatusCallbackEvents []string
	SendDigits           string
	Timeout, TimeLimit   time.Duration // whole seconds, rounded up; 0: Twilio's default
	MachineDetection     string        // "", "Enable" or "DetectMessageEnd"
}

func callOf(r *api.ApiV2010Call) Call {
	if r == nil {
		return Call{}
	}
	return Call{SID: deref(r.Sid), Status: deref(r.Status)}
}

// CreateCall places an outbound call.
func (c *Client) CreateCall(ctx context.Context, p CreateCallParams) (Call, error) {
	from := p.From
	if from == "" {
		from = c.cfg.FromNumber
	}
	params := &api.CreateCallParams{To: ptr(p.To), From: ptr(from)}
	if p.URL != "" {
		params.Url = ptr(p.URL)
	}
	if p.Twiml != "" {
		params.Twiml = ptr(p.Twiml)
	}
	if p.StatusCallback != "" {
		params.StatusCallback = ptr(p.StatusCallback)
		params.StatusCallbackMethod = ptr("POST")
		if len(p.StatusCallbackEvents) > 0 {
			params.StatusCallbackEvent = ptr(append([]string(nil), p.StatusCallbackEvents...))
		}
	}
	if p.SendDigits != "" {
		params.SendDigits = ptr(p.SendDigits)
	}
	if p.Timeout > 0 {
		params.Timeout = ptr(seconds(p.Timeout))
	}
	if p.TimeLimit > 0 {
		params.TimeLimit = ptr(seconds(p.TimeLimit))
	}
	if p.MachineDetection != "" {
		params.MachineDetection = ptr(p.MachineDetection)
	}
	var call Call
	err := c.do(ctx, "create call", "", func(s services) error {
		r, err := s.api.CreateCall(params)
		call = callOf(r)
		return err
	})
	return call, err
}

// UpdateCallTwiml replaces what a live call is doing with twiml.
func (c *Client) UpdateCallTwiml(ctx context.Context, sid, twiml string) error {
	return c.do(ctx, "update call", sid, func(s services) error {
		_, err := s.api.UpdateCall(sid, &api.UpdateCallParams{Twiml: ptr(twiml)})
		return err
	})
}

// HangUp ends a call (Status=completed). A call that has already ended is not
// an error.
func (c *Client) HangUp(ctx context.Context, sid string) error {
	err := c.do(ctx, "hang up", sid, func(s services) error {
		_, err := s.api.UpdateCall(sid, &api.UpdateCallParams{Status: ptr("completed")})
		return err
	})
	if Code(err) == CodeCallNotActive {
		var status string
		ferr := c.do(ctx, "fetch call", sid, func(s services) error {
			r, err := s.api.FetchCall(sid, nil)
			status = callOf(r).Status
			return err
		})
		if ferr == nil && visit.TerminalCallStatus(status) {
			return nil
		}
	}
	return err
}

// Message is an SMS as Twilio reports it.
type Message struct {
	SID, Status string
}

// SendSMSParams describe an SMS. Body and the number never reach logs or errors.
type SendSMSParams struct {
	To, Body       string
	StatusCallback string
	// ValidFor, when positive and a Messaging Service sends, is Twilio's
	// ValidityPeriod: a message still queued after it fails instead of
	// arriving late. Whole seconds, 1 s to 10 h (36000 s, Twilio's range).
	ValidFor time.Duration
}

// maxValiditySeconds is the longest ValidityPeriod Twilio takes.
const maxValiditySeconds = 36000

// SendSMS sends an SMS through Config.MessagingServiceSID when set, else from
// Config.FromNumber.
func (c *Client) SendSMS(ctx context.Context, p SendSMSParams) (Message, error) {
	params := &api.CreateMessageParams{To: ptr(p.To), Body: ptr(p.Body)}
	if c.cfg.MessagingServiceSID != "" {
		params.MessagingServiceSid = ptr(c.cfg.MessagingServiceSID)
	} else {
		params.From = ptr(c.cfg.FromNumber)
	}
	if p.StatusCallback != "" {
		params.StatusCallback = ptr(p.StatusCallback)
	}
	if p.ValidFor > 0 && c.cfg.MessagingServiceSID != "" {
		params.ValidityPeriod = ptr(min(max(seconds(p.ValidFor), 1), maxValiditySeconds))
	}
	var msg Message
	err := c.do(ctx, "send sms", "", func(s services) error {
		r, err := s.api.CreateMessage(params)
		if r != nil {
			msg = Message{SID: deref(r.Sid), Status: deref(r.Status)}
		}
		return err
	})
	return msg, err
}

// AccessToken builds a Twilio Video access token for identity whose grant is
// limited to room, valid from notBefore (zero: now) until validUntil, which
// Twilio allows at most 24 h after the token is made. It needs Config.APIKey
// and APISecret.
func (c *Client) AccessToken(identity, room string, notBefore, validUntil time.Time) (string, error) {
	if c.cfg.APIKey == "" || c.cfg.APISecret == "" {
		return "", errors.New("twilioapi: access token: API key and secret are not configured")
	}
	if identity == "" || room == "" {
		return "", errors.New("twilioapi: access token: identity and room are required")
	}
	params := jwt.AccessTokenParams{
		AccountSid:    c.cfg.AccountSID,
		SigningKeySid: c.cfg.APIKey,
		Secret:        c.cfg.APISecret,
		Identity:      identity,
		// Ttl is clamped to at least an hour; ValidUntil sets exp exactly.
		ValidUntil: float64(validUntil.Unix()),
	}
	if !notBefore.IsZero() {
		params.Nbf = float64(notBefore.Unix())
	}
	tok := jwt.CreateAccessToken(params)
	tok.AddGrant(&jwt.VideoGrant{Room: room})
	s, err := tok.ToJwt()
	if err != nil {
		return "", errors.New("twilioapi: access token: " + err.Error())
	}
	return s, nil
}

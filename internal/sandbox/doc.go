// Package sandbox is visitflow's built-in Twilio emulator. It owns nothing
// but pretend Twilio state: calls, messages and Video rooms, kept in memory.
//
// It serves, from one http.Handler:
//
//   - the Twilio REST resources visitflow uses, shaped like Twilio's OpenAPI
//     specs (twilio_api_v2010.json, twilio_video_v1.json): create/fetch/update
//     Calls, create/fetch Messages, create/fetch/update Rooms, list/fetch Room
//     Participants. They require HTTP basic auth with the sandbox credentials
//     and answer Twilio-style JSON errors {code, message, more_info, status};
//   - a control API to play the outside world (people joining rooms, callers
//     dialing in and pressing keys, phones texting us);
//   - an inspection API (GET /calls, /messages, /rooms, /events) that masks
//     nothing: it is test data, and it exists only in sandbox mode.
//
// Client (NewClient) is the typed Go client for the control and inspection
// API; it decodes into the same view types the handlers serve (CallView,
// MessageView, RoomView, ParticipantView, Event, IncomingSMSResult).
//
// # Routing and the /sandbox prefix
//
// Routing is by path alone; the Host header is ignored. Paths starting with
// /2010-04-01/ are the Voice/Messaging API, /v1/ the Video API; everything
// else is the control/inspection API. A leading "/sandbox" is stripped, so
// the app may mount Handler at "/sandbox/" with or without http.StripPrefix
// and set twilio.api_url to "<public base>/sandbox": twilioapi then sends
// https://api.twilio.com/2010-04-01/… to <base>/sandbox/2010-04-01/… and
// https://video.twilio.com/v1/Rooms to <base>/sandbox/v1/Rooms, keeping the
// Host header. Tests may serve Handler at the root of an httptest server.
//
// # Callbacks
//
// The emulator calls back like Twilio: form POSTs (GET when a StatusCallbackMethod
// or Method says so) signed with X-Twilio-Signature computed from AuthToken
// by its own signer, with an I-Twilio-Idempotency-Token header (the same on
// a request's retries). A callback URL is used exactly as given, query
// string included; a #fragment is neither sent nor signed. Deliveries happen
// asynchronously but promptly and in order per resource. A failed delivery
// is retried only as a Voice URL's connection overrides say (overrides.go);
// without them a 5xx is not retried, as on Twilio. Faults (faults.go) drop
// status callbacks or fail REST creates after acting on them, on request.
// Video callbacks carry Timestamp in ISO
// 8601 with milliseconds, Voice callbacks in RFC 2822; both carry
// SequenceNumber (from 0 per resource). Every delivery, TwiML fetch and TwiML
// verb executed is recorded as an Event: tests await them with WaitFor
// instead of sleeping.
//
// Time: Options.MinuteLength (default one minute) is the length of a Twilio
// minute; a second is a sixtieth of it. Room timeouts, ringing, <Pause>,
// <Say> (1 s), <Play digits> (w = 0.5 s; W is refused, as <Play> knows only
// w), <Gather timeout>, call Timeout/TimeLimit and answering-machine
// detection (amd.go) are measured in these. POST /clock/advance brings room
// timeouts closer.
//
// # Rooms
//
// POST /v1/Rooms creates an in-progress room (Type default group;
// EmptyRoomTimeout and UnusedRoomTimeout 1–60 minutes, default 5) and sends
// room-created. UniqueName must be unique among in-progress rooms (400,
// 53113 "Room exists"). GET /v1/Rooms/{Sid} takes a SID or the UniqueName of
// an in-progress room. POST /v1/Rooms/{Sid} Status=completed ends it (202;
// a completed room is returned unchanged). Ending, by REST or by the
// empty/unused timeout, disconnects everybody (track-removed and
// participant-disconnected for each) and then sends room-ended; ending a
// room that is no longer in progress is 400, 53112.
//
// Control:
//
//	POST   /rooms/{name}/participants {"identity":"pat-1","kind":"browser"|"phone","token":"…"}
//	DELETE /rooms/{name}/participants/{identity}
//	POST   /clock/advance {"seconds":3600}
//
// Joining sends participant-connected, then track-added (audio, plus video
// for "browser"); leaving sends track-removed and participant-disconnected.
// With no in-progress room of that name the join creates an ad-hoc room,
// which has no status callback. A token is checked as Twilio checks a
// connecting client (tokens.go).
// A second participant with a connected identity replaces the first, as
// Twilio does (error 53205).
//
// # Calls
//
// POST …/Calls.json answers 201 with status queued, then: initiated (after
// 1 s), ringing, and the destination's outcome (table below). Status
// callbacks are sent for the requested StatusCallbackEvent values (repeated
// fields; "completed" alone when none), answered with CallStatus
// in-progress, and completed with the terminal CallStatus, CallDuration,
// Duration and SipResponseCode. An answered call fetches its Url (signed, with
// Method; given Url and Twiml, Url wins) or runs its Twiml, after
// answering-machine detection when MachineDetection asks for it, and follows:
//
//   - <Say>, <Pause length>, <Play digits> (logged and timed);
//   - <Gather numDigits finishOnKey timeout action method actionOnEmptyResult>
//     with nested <Say>/<Play>/<Pause>: digits come from the control API; the
//     action (default: the current document) is requested with Digits and
//     FinishedOnKey; without input the call falls through to the next verb;
//   - <Redirect method>, <Hangup>, <Reject> (inbound only: busy);
//   - <Connect action><Room participantIdentity>name</Room></Connect>: the
//     call joins the in-progress group room as a "phone" participant
//     (participant-connected, track-added audio). When there is no such
//     room (or it is not a group room, or full) the call goes on with the
//     next verb, like Twilio. Hanging up sends participant-disconnected; when
//     the room ends the call goes on to the <Connect action> or next verb.
//
// Running out of verbs hangs up (completed). POST …/Calls/{Sid}.json with
// Status=completed hangs up an answered call (canceled before answer); Twiml
// or Url redirects it; updating an ended call is 400 21220. A TwiML fetch
// that fails or does not parse ends the call (Twilio's 11200/12100).
//
// Outbound call outcomes by To number:
//
//	+15005550001  busy (no ringing; SipResponseCode 486)
//	+15005550002  no-answer: rings for the call's Timeout (default 60 s), SipResponseCode 487
//	+15005550003  failed right after initiated (SipResponseCode 404)
//	+15005550004  answered by a machine (a voicemail greeting, then a beep); it never presses keys
//	+15005550009  busy on the first call the emulator places to it, answered by an IVR menu afterwards
//	+15005550020  answered by an IVR menu (long recorded speech: AMD says machine_start)
//	+15005550429  REST 429, code 20429 (calls and SMS)
//	+15005550500  REST 500, code 20500 (calls and SMS)
//	any other     answered by a human after 3 s of ringing
//
// A To or From that is not E.164 is REST 400 21211 / 21212.
//
// Control:
//
//	POST /calls/incoming {"from":"+1…","to":"+1…"}  a PSTN caller dials our number (to defaults
//	                                              to Options.PhoneNumber): the emulator POSTs signed
//	                                              to IncomingVoiceURL (CallStatus ringing, Direction
//	                                              inbound) and follows the TwiML; the completed
//	                                              callback goes to IncomingVoiceStatusURL if set
//	POST /calls/{sid}/digits {"digits":"482913#"} the caller presses keys; kept until a <Gather>
//	                                              consumes them, so they may be sent early
//
// # Messages
//
// POST …/Messages.json (From or MessagingServiceSid, Body) answers 201 with
// status queued (accepted with a service only), then sends status callbacks
// queued → sent → delivered. Outcomes by To number (Twilio's own test
// numbers where they exist):
//
//	+15005550001  REST 400 21211, invalid 'To' number (also any non-E.164 To)
//	+15005550004  REST 400 21610, the recipient replied STOP
//	+15005550009  REST 400 21614, not a mobile number
//	+15005550010  queued → sent → undelivered, ErrorCode 30003 (unreachable handset)
//	+15005550011  queued → sent → undelivered, ErrorCode 30005 (unknown handset)
//	+15005550012  queued → failed, ErrorCode 30008 (unknown error)
//	opted out     REST 400 21610 after the number texted STOP, until START
//	any other     queued → sent → delivered
//
// From +15005550008 is refused once with 21611 (queue full), then accepted.
//
// Control:
//
//	POST /messages/incoming {"from","to","body"}  a phone texts us: a whole-body keyword (keywords.go)
//	                                              opts out or in and gets Twilio's own reply; then
//	                                              POSTs signed to IncomingSMSURL and answers with the
//	                                              webhook's status and the <Message> replies, recorded
//	                                              as outbound-reply
//	POST|GET|DELETE /faults                       fault injection (faults.go)
//
// docs/sandbox.md has every magic number and behaviour, and where the
// emulator differs from Twilio on purpose. Error codes the protocol notes do
// not name (validation of other parameters) are the emulator's best
// approximation of Twilio's.
package sandbox

package workflows

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/twilioapi"
	"github.com/visitflow/visitflow/internal/visit"
)

// smsSend is one SMS a job wants sent at most once per visit and purpose.
type smsSend struct {
	visitID  string
	purpose  string // "reminder:r1h0m0s:s0", "provider-late", "followup" …
	to       visit.Role
	template string
	// applies is re-checked on the stored visit right before claiming.
	applies func(v *visit.Visit) bool
	// timeSensitive: useless once the visit's no-show deadline passed, so
	// Twilio is asked to drop it rather than deliver it late.
	timeSensitive bool
	// fill, optional, adds what the template needs beyond the visit's own
	// text (the interpreter line and attempts).
	fill func(v *visit.Visit, t *smsText)
}

// smsKey names a purpose in Visit.Done (sent, or settled for good) and in
// Visit.Extra (claimed: "sending:<time>").
func smsKey(purpose string) string { return "sms:" + purpose }

const claimPrefix = "sending:"

// claimTimeout is how long a claim may stay unresolved before the send is
// treated as "possibly sent": longer than one REST request can take, so the
// claiming attempt has surely given up by then.
func (e *Engine) claimTimeout() time.Duration {
	d := e.cfg.Twilio.RequestTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return d + 5*time.Second
}

// errSendInFlight: another attempt holds the claim; retrying later settles
// it. It is not a failure (CountsAsFailure): waiting out a claim must not
// use up the job's retries.
var errSendInFlight = errors.New("another attempt is sending this, or its outcome is being settled")

// CountsAsFailure is the workers' asynq.Config.IsFailure: a job waiting for
// another attempt's claim to settle is retried without counting against its
// MaxRetry.
func CountsAsFailure(err error) bool { return !errors.Is(err, errSendInFlight) }

// sendOnce sends s at most once, ever, for its visit and purpose:
//
//  1. claim: inside the visit's atomic update, the purpose is marked
//     "sending" unless it is done, claimed, or no longer applies; only the
//     claimer calls Twilio, so concurrent and duplicated jobs send nothing;
//  2. send, with a status callback carrying ?visit=&purpose=;
//  3. record: done with the MessageSid. How a failure is handled follows
//     twilioapi's classification: a final refusal (21211, 21614…) settles
//     the purpose as failed; a transient one (429, 21611, refused
//     credentials, a request that never left) releases the claim and Asynq
//     retries; an ambiguous one (a 5xx or a timeout after the request left:
//     Twilio may have accepted the message) keeps the claim, like the one a
//     crash between claiming and recording leaves. A kept claim holds every
//     retry off; it is settled by the message's status callback (which marks
//     it done) or, after claimTimeout, by the next attempt asking Twilio
//     (settle.go): the message found there is recorded with its SID, and
//     only when Twilio has none is it sent, once more. Exactly once, not at
//     most once: a worker that dies mid-send loses no reminder, and a lost
//     answer sends no second one.
func (e *Engine) sendOnce(ctx context.Context, s smsSend) error {
	key := smsKey(s.purpose)
	v, err := e.store.Get(ctx, s.visitID)
	if errors.Is(err, visit.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if v.IsDone(key) || !s.applies(v) {
		return nil
	}
	phone := recipientPhone(v, s.to)
	optedOut := false
	if phone != "" {
		if optedOut, err = e.store.OptedOut(ctx, e.phoneHash(phone)); err != nil {
			return err
		}
	}
	if c, ok := v.Extra[key]; ok && e.claimStale(c) {
		settled, err := e.settleStaleClaim(ctx, s, phone, c)
		if err != nil || settled {
			return err
		}
		// Twilio holds no such message: the claim is released, and this
		// attempt sends it, once.
	}
	// The join link's secret is made here, in this attempt's memory only: it
	// is stored (hashed) with the claim below and sent once by the claimer.
	// An attempt that does not win the claim drops it unused; one that
	// finds a claim of unknown outcome sends nothing, so no second link.
	var link joinInvite
	if usesJoinURL(s.template) && phone != "" && !optedOut {
		if link, err = e.newJoinInvite(ctx, v); err != nil {
			return fmt.Errorf("sms %s for %s: %w", s.purpose, s.visitID, err)
		}
	}
	text := e.visitText(v, link.secret)
	if s.fill != nil {
		s.fill(v, &text)
	}
	body, err := renderText("sms", s.template, text)
	if err != nil {
		return fmt.Errorf("sms %s: %v: %w", s.purpose, err, asynq.SkipRetry)
	}

	now := e.clock.Now()
	claim := e.newClaim(now, body, link.hash)
	var claimed, held bool
	_, _, err = e.update(ctx, s.visitID, "", now, func(v *visit.Visit) error {
		claimed, held = false, false
		if v.IsDone(key) || !s.applies(v) {
			return nil
		}
		if phone == "" || optedOut {
			why := "the " + string(s.to) + " has no phone number"
			if optedOut {
				why = "the " + string(s.to) + " opted out of SMS"
			}
			v.MarkDone(key, now)
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "sms-skipped",
				Summary: s.purpose + " SMS not sent: " + why})
			return nil
		}
		if _, ok := v.Extra[key]; ok {
			// Another attempt's claim: it is sending, or (stale) the next
			// attempt settles it by asking Twilio before anything is sent.
			held = true
			return nil
		}
		if v.Extra == nil {
			v.Extra = map[string]string{}
		}
		v.Extra[key] = claim
		link.store(v, s.to, now)
		claimed = true
		return nil
	})
	if err != nil {
		return e.ignoreGone("sms", s.visitID, err)
	}
	if held {
		return fmt.Errorf("sms %s for %s: %w", s.purpose, s.visitID, errSendInFlight)
	}
	if !claimed {
		return nil
	}
	if s.to == visit.RolePatient {
		if err := e.indexReplies(ctx, v, phone); err != nil {
			e.log.Warn("sms: replies to this message will not be matched to the visit", zap.String("visit", s.visitID), zap.Error(err))
		}
	}

	msg, sendErr := e.twilio.SendSMS(ctx, twilioapi.SendSMSParams{To: phone, Body: body,
		StatusCallback: e.smsStatusURL(s.visitID, s.purpose), ValidFor: e.smsValidity(v, s)})
	if sendErr == nil {
		return e.settle(ctx, s, claim, "", "sms-accepted", s.purpose+" SMS accepted by Twilio ("+msg.SID+")")
	}
	switch class := twilioapi.ClassOf(sendErr); {
	case twilioapi.Code(sendErr) == twilioapi.CodeOptedOut:
		if err := e.store.SetOptOut(ctx, e.phoneHash(phone), true, e.clock.Now()); err != nil {
			return err
		}
		return e.settle(ctx, s, claim, link.hash, "sms-opted-out",
			s.purpose+" SMS refused: the "+string(s.to)+" opted out (21610); nothing more will be sent to this number")
	case class == twilioapi.ClassFinal:
		if err := e.settle(ctx, s, claim, link.hash, "sms-failed", s.purpose+" SMS failed: "+twilioFailureText(sendErr)); err != nil {
			return err
		}
		return fmt.Errorf("sms %s for %s: %w", s.purpose, s.visitID, sendErr)
	case class == twilioapi.ClassTransient:
		if err := e.release(ctx, s, claim, link.hash); err != nil {
			e.log.Warn("sms: could not release claim", zap.String("visit", s.visitID), zap.Error(err))
		}
		return fmt.Errorf("sms %s for %s: %w", s.purpose, s.visitID, sendErr)
	case class == 0:
		// Not an answer from Twilio (the worker is going away…): keep the
		// claim, as a crash would; after claimTimeout a retry settles it by
		// asking Twilio.
		return fmt.Errorf("sms %s for %s: outcome unknown: %w", s.purpose, s.visitID, sendErr)
	default:
		// Twilio may have accepted it: keep the claim, never send blindly
		// again. The retry finds the claim held; once it is stale it is
		// settled by asking Twilio (settle.go).
		e.log.Warn("sms: outcome unknown; settled by asking Twilio once the claim is stale",
			zap.String("visit", s.visitID), zap.String("purpose", s.purpose), zap.Error(sendErr))
		if err := e.unanswered(ctx, s, claim, sendErr); err != nil {
			return err
		}
		return fmt.Errorf("sms %s for %s: outcome unknown, the claim stays: %w", s.purpose, s.visitID, sendErr)
	}
}

// unansweredKey marks in Visit.Done that the timeline already says a send
// went unanswered.
func unansweredKey(purpose string) string { return "sms-unanswered:" + purpose }

// unanswered records, in the visit's timeline, a send Twilio may or may not
// have accepted (an ambiguous answer). It is not a failure yet: the claim
// stays, and the message's status callback or, once the claim is stale,
// the next attempt asking Twilio settles it (settle.go).
func (e *Engine) unanswered(ctx context.Context, s smsSend, claim string, cause error) error {
	now := e.clock.Now()
	key := smsKey(s.purpose)
	_, _, err := e.update(ctx, s.visitID, "", now, func(v *visit.Visit) error {
		if v.Extra[key] != claim || v.IsDone(key) || !v.MarkDone(unansweredKey(s.purpose), now) {
			return nil // settled meanwhile (its status callback came first), or said already
		}
		v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: "sms-unanswered",
			Summary: s.purpose + " SMS: " + twilioFailureText(cause) +
				" after the request left; Twilio may have accepted it, so it is settled by asking Twilio, not by sending again"})
		return nil
	})
	if errors.Is(err, visit.ErrNotFound) {
		return nil
	}
	return err
}

// smsValidity is how long Twilio may keep s queued before it is useless:
// until the visit's no-show deadline for what is about the visit's start.
// Zero (no limit) for the rest.
func (e *Engine) smsValidity(v *visit.Visit, s smsSend) time.Duration {
	if !s.timeSensitive {
		return 0
	}
	return v.ScheduledAt.Add(e.cfg.Visits.NoShowAfter).Sub(e.clock.Now())
}

// settle marks the purpose done (whoever holds the claim) and logs it.
// unsentInvite is the hash of the join invite of a message Twilio refused:
// its link reached no one, so it is dropped ("" keeps it).
func (e *Engine) settle(ctx context.Context, s smsSend, claim, unsentInvite, typ, summary string) error {
	now := e.clock.Now()
	key := smsKey(s.purpose)
	_, _, err := e.update(ctx, s.visitID, "", now, func(v *visit.Visit) error {
		delete(v.Extra, key)
		delete(v.Invites, unsentInvite)
		if v.MarkDone(key, now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceWorker, Type: typ, Summary: summary})
		}
		return nil
	})
	if errors.Is(err, visit.ErrNotFound) {
		return nil
	}
	return err
}

// release drops our claim so the retry can send, and the join invite minted
// for the message Twilio did not take (the retry mints its own).
func (e *Engine) release(ctx context.Context, s smsSend, claim, inviteHash string) error {
	key := smsKey(s.purpose)
	_, _, err := e.update(ctx, s.visitID, "", e.clock.Now(), func(v *visit.Visit) error {
		if v.Extra[key] == claim {
			delete(v.Extra, key)
			delete(v.Invites, inviteHash)
		}
		return nil
	})
	if errors.Is(err, visit.ErrNotFound) {
		return nil
	}
	return err
}

func recipientPhone(v *visit.Visit, r visit.Role) string {
	if r == visit.RoleProvider {
		return v.Provider.Phone
	}
	return v.Patient.Phone
}

// phoneHash is the keyed hash under which a number's opt-out is stored, so
// the opt-out list cannot be read as phone numbers. The key is
// visits.optout_secret, else derived from twilio.auth_token.
func (e *Engine) phoneHash(phone string) string { return keyedPhoneHash(e.hashKey(), phone) }

// hashKey keys every hash visitflow keeps of PHI (numbers, message bodies).
func (e *Engine) hashKey() string {
	if secret := e.cfg.Visits.OptOutSecret; secret != "" {
		return secret
	}
	sum := sha256.Sum256([]byte("visitflow opt-out key:" + e.cfg.Twilio.AuthToken))
	return string(sum[:])
}

// keyedPhoneHash is the HMAC-SHA256 of phone under key, hex: the only form in
// which visitflow keys anything by a phone number. Without the key the hash
// cannot be reversed by hashing every possible number.
func keyedPhoneHash(key, phone string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(phone))
	return hex.EncodeToString(m.Sum(nil))
}

func (e *Engine) smsStatusURL(visitID, purpose string) string {
	q := url.Values{"visit": {visitID}, "purpose": {purpose}}
	return strings.TrimRight(e.cfg.HTTP.PublicBaseURL, "/") + "/twilio/sms/status?" + q.Encode()
}

// SMSStatusEvent is a Twilio message status callback (POST /twilio/sms/status).
type SMSStatusEvent struct {
	VisitHint  string // ?visit= of the StatusCallback we gave
	Purpose    string // ?purpose=
	Token      string // I-Twilio-Idempotency-Token
	MessageSID string
	Status     string // queued, sent, delivered, undelivered, failed …
	ErrorCode  int
	To         string
}

// ApplySMSStatus records a message status in the visit's timeline (once per
// message and status). It settles a claimed send (the message exists), and
// error 21610 records the recipient as opted out.
func (e *Engine) ApplySMSStatus(ctx context.Context, ev SMSStatusEvent) (Result, error) {
	if ev.VisitHint == "" || !visit.ValidID(ev.VisitHint) {
		return Result{}, ErrUnmatched
	}
	now := e.clock.Now()
	optedOut := ev.ErrorCode == twilioapi.CodeOptedOut && ev.To != ""
	if optedOut {
		if err := e.store.SetOptOut(ctx, e.phoneHash(ev.To), true, now); err != nil {
			return Result{VisitID: ev.VisitHint}, err
		}
	}
	res, _, err := e.update(ctx, ev.VisitHint, ev.Token, now, func(v *visit.Visit) error {
		if !v.MarkDone("sms-status:"+ev.MessageSID+":"+ev.Status, now) {
			return nil // a repeated callback
		}
		what := "SMS"
		if ev.Purpose != "" {
			what = ev.Purpose + " SMS"
		}
		summary := what + " " + ev.Status + " (" + ev.MessageSID + ")"
		if ev.ErrorCode != 0 {
			summary += " error " + strconv.Itoa(ev.ErrorCode)
		}
		v.Log(visit.Entry{At: now, Source: visit.SourceSMS, Type: "sms-" + ev.Status, Summary: summary})
		if ev.Purpose != "" {
			key := smsKey(ev.Purpose)
			if _, claimed := v.Extra[key]; claimed {
				// The message exists: this settles a send in flight or
				// one whose outcome was unknown.
				delete(v.Extra, key)
				v.MarkDone(key, now)
				v.Log(visit.Entry{At: now, Source: visit.SourceSMS, Type: "sms-confirmed",
					Summary: what + " confirmed by its status callback (" + ev.MessageSID + ")"})
			}
		}
		if optedOut {
			v.Log(visit.Entry{At: now, Source: visit.SourceSMS, Type: "sms-opted-out",
				Summary: "the recipient opted out (21610); nothing more will be sent to this number"})
		}
		return nil
	})
	if errors.Is(err, visit.ErrNotFound) {
		return res, ErrUnmatched
	}
	return res, err
}

// HelpText answers HELP when Twilio did not answer it already.
const HelpText = "Visit reminders from your care team. Reply STOP to stop messages, START to receive them again."

// IncomingSMS is an inbound text (POST /twilio/sms/incoming). From and Body
// are PHI: never logged or stored as they are.
type IncomingSMS struct {
	From, Body string
	// OptOutType is Twilio's verdict with Advanced Opt-Out (STOP, START,
	// HELP); empty otherwise.
	OptOutType string
}

// ApplyIncomingSMS keeps the opt-out record current from an inbound text and
// returns the replies to send back. STOP and START get none (Twilio confirms
// those itself), nor does HELP when Twilio answered it (OptOutType HELP).
// Anything else is an ordinary message.
func (e *Engine) ApplyIncomingSMS(ctx context.Context, in IncomingSMS) ([]string, error) {
	switch smsKeyword(in.Body, in.OptOutType) {
	case keywordStop:
		return nil, e.store.SetOptOut(ctx, e.phoneHash(in.From), true, e.clock.Now())
	case keywordStart:
		return nil, e.store.SetOptOut(ctx, e.phoneHash(in.From), false, e.clock.Now())
	case keywordHelp:
		if in.OptOutType != "" {
			return nil, nil // Twilio's own help reply went out
		}
		return []string{HelpText}, nil
	}
	return nil, e.applyPatientReply(ctx, in.From, in.Body)
}

package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
)

// Settling a send whose outcome is unknown. A request that timed out or got
// a 5xx after it left, or a worker that died between Twilio's answer and
// recording it, leaves a claim and no answer. The claim says what was sent
// without saying it: when, a keyed fingerprint of the body (the body carries
// a unique join link, so the fingerprint names one message), and the hash
// of that link's invite. Once the claim is older than any request can take,
// the next attempt lists the recipient's recent messages at Twilio and
// looks for that fingerprint: found, the message is recorded as sent; not
// found, the claim is released and the message sent, once.

// settleWithin bounds how long an unknown outcome is worth settling: a
// reminder found unsendable hours later is of no use, and a claim that
// Twilio cannot be asked about for that long is shown as a failure
// ("sms-outcome-unknown") instead of being retried for ever.
const settleWithin = 4 * time.Hour

// smsClaim is what Visit.Extra holds while a message is being sent.
type smsClaim struct {
	at          time.Time
	fingerprint string // keyed hash of the body
	invite      string // hash of the join invite the body carries, if any
}

func (e *Engine) newClaim(now time.Time, body, inviteHash string) string {
	return claimPrefix + now.UTC().Format(time.RFC3339Nano) + " " + e.bodyFingerprint(body) + " " + inviteHash
}

func parseClaim(s string) smsClaim {
	f := strings.Fields(strings.TrimPrefix(s, claimPrefix))
	var c smsClaim
	if len(f) > 0 {
		c.at, _ = time.Parse(time.RFC3339Nano, f[0])
	}
	if len(f) > 1 {
		c.fingerprint = f[1]
	}
	if len(f) > 2 {
		c.invite = f[2]
	}
	return c
}

// bodyFingerprint identifies a message body without keeping it (a body
// holds names and a join link).
func (e *Engine) bodyFingerprint(body string) string {
	return keyedPhoneHash(e.hashKey(), "sms body:"+body)[:32]
}

// claimStale reports whether the attempt that made claim has surely given
// up on its request (claimTimeout).
func (e *Engine) claimStale(claim string) bool {
	return e.clock.Now().Sub(parseClaim(claim).at) >= e.claimTimeout()
}

// settleStaleClaim asks Twilio whether the message of a stale claim exists.
// It reports settled when the purpose is now done (found at Twilio, or given
// up after settleWithin); false with no error means Twilio has no such
// message and the claim was released for this attempt to send.
func (e *Engine) settleStaleClaim(ctx context.Context, s smsSend, phone, claim string) (settled bool, err error) {
	c := parseClaim(claim)
	now := e.clock.Now()
	// A minute of slack: the claim is stamped before the request leaves,
	// and Twilio's clock is not ours.
	msgs, err := e.twilio.MessagesSentTo(ctx, phone, c.at.Add(-time.Minute))
	if err != nil {
		if now.Sub(c.at) < settleWithin {
			return false, fmt.Errorf("sms %s for %s: asking Twilio whether an unanswered send went out: %w", s.purpose, s.visitID, err)
		}
		e.log.Warn("sms: outcome unknown and Twilio could not be asked in time; giving up",
			zap.String("visit", s.visitID), zap.String("purpose", s.purpose), zap.Error(err))
		return true, e.settle(ctx, s, claim, "", "sms-outcome-unknown",
			s.purpose+" SMS outcome unknown: a send was not answered and Twilio could not be asked within "+settleWithin.String()+"; not sending again")
	}
	for _, m := range msgs {
		if c.fingerprint != "" && e.bodyFingerprint(m.Body) == c.fingerprint {
			return true, e.settle(ctx, s, claim, "", "sms-accepted",
				s.purpose+" SMS found at Twilio ("+m.SID+") after its send went unanswered")
		}
	}
	if c.fingerprint == "" {
		// A claim from before fingerprints: nothing to match, so not sending
		// again is the only answer that cannot be a duplicate.
		return true, e.settle(ctx, s, claim, "", "sms-outcome-unknown",
			s.purpose+" SMS outcome unknown: an earlier attempt stopped after calling Twilio; not sending again")
	}
	if err := e.release(ctx, s, claim, c.invite); err != nil {
		return false, err
	}
	e.log.Info("sms: an unanswered send never reached Twilio; sending it now",
		zap.String("visit", s.visitID), zap.String("purpose", s.purpose))
	return false, nil
}

// dialClaimKey names, in Visit.Extra, an interpreter attempt whose call
// request got no clear answer; the value is when the request left.
func dialClaimKey(p Payload) string {
	return fmt.Sprintf("dial:%d:%d", p.Request, p.Attempt)
}

// settleDial asks Twilio whether the unanswered call request of attempt p
// placed a call: a call to the line created since the request and known to
// no other visit is this attempt's, and is adopted. It reports redial when
// Twilio has no such call (the attempt is given back, to be dialled once).
// A shared interpreter line may take calls from other visits at the same
// moment; those are recorded in the call index as soon as their requests
// are answered, which is why an indexed call is never adopted here.
func (e *Engine) settleDial(ctx context.Context, p Payload, v *visit.Visit) (redial bool, err error) {
	key := dialClaimKey(p)
	requested, _ := time.Parse(time.RFC3339Nano, v.Extra[key])
	if e.clock.Now().Sub(requested) < e.claimTimeout() {
		return false, fmt.Errorf("interpreter dial for %s: %w", p.VisitID, errSendInFlight)
	}
	line := e.cfg.Interpreter.Lines[v.Interpreter.Line]
	calls, err := e.twilio.CallsPlacedTo(ctx, line.Phone, requested.Add(-time.Minute))
	if err != nil {
		return false, fmt.Errorf("interpreter dial for %s: asking Twilio whether an unanswered call was placed: %w", p.VisitID, err)
	}
	found := ""
	for i := len(calls) - 1; i >= 0; i-- { // oldest first: the first created since the request
		switch _, err := e.store.VisitForCall(ctx, calls[i].SID); {
		case errors.Is(err, visit.ErrNotFound):
			found = calls[i].SID
		case err != nil:
			return false, err
		}
		if found != "" {
			break
		}
	}
	if found != "" {
		if err := e.store.IndexCall(ctx, found, v.ID); err != nil {
			return false, err
		}
	}
	now := e.clock.Now()
	hangUp := false
	_, _, err = e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		hangUp, redial = false, false
		if v.Extra[key] == "" {
			return nil
		}
		delete(v.Extra, key)
		leg := v.Interpreter
		switch {
		case !leg.Unplaced(p.Request, p.Attempt):
			// Its status callback adopted the call meanwhile.
		case found != "":
			hangUp = leg.RecordCall(p.Request, p.Attempt, found)
			v.Log(visit.Entry{At: now, Source: visit.SourceREST, Type: "interpreter-call-found",
				Summary: fmt.Sprintf("interpreter attempt %d: call %s found at Twilio after its request went unanswered", p.Attempt, found)})
		default:
			redial = leg.GiveBack(p.Request, p.Attempt) == nil
			v.Log(visit.Entry{At: now, Source: visit.SourceREST, Type: "interpreter-call-not-placed",
				Summary: fmt.Sprintf("interpreter attempt %d: Twilio has no call from the unanswered request; dialling again", p.Attempt)})
		}
		return nil
	})
	if err != nil {
		return false, e.ignoreGone("interpreter", v.ID, err)
	}
	if hangUp {
		return false, e.twilio.HangUp(ctx, found)
	}
	return redial, nil
}

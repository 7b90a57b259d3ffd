package workflows

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/twiml"
)

// PSTN dial-in. Caller ID is spoofable, so nothing here trusts it to
// decide whether a PIN is checked: every PIN entered is checked, a right PIN
// in its window always bridges, and what bounds guessing is the PIN space
// (visits.dial_in_pin_digits) and the failed-PIN budget across all callers
// (visits.dial_in_failure_budget): beyond it, and beyond one caller's own
// limit, a call holds before its prompt and gets fewer tries. Caller ID only
// ever buys the patient's own phone something harmless: no hold while a
// campaign runs, and the time of a visit called too early.
//
// A PIN outside its window gets exactly the answer of a wrong PIN and is
// counted like one, so a stranger cannot tell a valid PIN from a wrong one.

const (
	// holdSeconds and maxHolds bound how long a caller waits for a room
	// that is being opened.
	holdSeconds = 3
	maxHolds    = 5
	// pinHoldAfter is how long after scheduled_at a PIN stays reserved for
	// its visit (and so unusable by another): the latest its window can end.
	pinHoldAfter = 24 * time.Hour
	// minPINDigits and maxPINDigits bound what is looked up at all, so a
	// PIN issued before visits.dial_in_pin_digits changed still works.
	minPINDigits, maxPINDigits = 6, 12
)

// Spoken texts of the dial-in flow (the PIN prompts are twiml.AskPIN's).
const (
	sayNoOpenVisit = twiml.NoOpenVisit + " The time of your visit is in your appointment message. Goodbye."
	sayVisitOver   = "This visit has ended. Please contact your provider's office if you need help. Goodbye."
	sayNoRoom      = "Sorry, we could not open your visit right now. Please call back in a few minutes. Goodbye."
)

// callerKey identifies a phone number for rate limiting and for matching a
// caller to a visit's patient without storing the number: an HMAC of it
// keyed with the auth token, so it cannot be reversed by hashing every
// possible phone number.
func (e *Engine) callerKey(phone string) string {
	return keyedPhoneHash("dialin:"+e.cfg.Twilio.AuthToken, phone)[:32]
}

// isPatientPhone reports whether caller ID from is v's patient phone,
// comparing the keyed hashes in constant time.
func (e *Engine) isPatientPhone(v *visit.Visit, from string) bool {
	if from == "" || v.Patient.Phone == "" {
		return false
	}
	return hmac.Equal([]byte(e.callerKey(from)), []byte(e.callerKey(v.Patient.Phone)))
}

// budgetWindow names the failed-PIN budget window now falls in (its start,
// in Unix seconds), and that window's length.
func (e *Engine) budgetWindow(now time.Time) (string, time.Duration) {
	w := e.cfg.Visits.DialInFailureBudgetWindow
	return strconv.FormatInt(now.Truncate(w).Unix(), 10), w
}

func (e *Engine) pinAction(try, tries int) string {
	return e.voiceURL("/twilio/voice/pin", "", "try", strconv.Itoa(try), "tries", strconv.Itoa(tries))
}

// DialInIncoming answers an inbound call to our number: ask for the visit
// PIN. A caller over its own failure limit, or any caller but an open
// visit's patient phone once the failed-PIN budget is used up, first holds
// for visits.dial_in_limited_hold and then gets
// visits.dial_in_limited_tries_per_call tries.
func (e *Engine) DialInIncoming(ctx context.Context, from string) (string, error) {
	c := e.cfg.Visits
	window, _ := e.budgetWindow(e.clock.Now())
	caller := e.callerKey(from)
	mine, everyone, patient, err := e.store.DialInStanding(ctx, caller, window, caller)
	if err != nil {
		return "", err
	}
	if mine >= c.DialInCallerFailureLimit || (everyone >= c.DialInFailureBudget && !patient) {
		if e.metrics != nil {
			e.metrics.DialInLimitedCalls.Inc()
		}
		return twiml.AskPIN(twiml.PINPrompt{
			Action: e.pinAction(1, c.DialInLimitedTriesPerCall), Digits: c.DialInPINDigits,
			Hold: int(c.DialInLimitedHold / time.Second),
		}), nil
	}
	return twiml.AskPIN(twiml.PINPrompt{Action: e.pinAction(1, c.DialInTriesPerCall), Digits: c.DialInPINDigits}), nil
}

// DialInPIN checks the PIN a caller entered on try of tries. A right PIN
// for a visit in its window bridges the caller into the room as the
// patient's phone leg. Anything else is answered as a wrong PIN — asked
// again until the call's tries are used, then a goodbye — and counted
// against the caller and the failed-PIN budget; only the visit's own
// patient phone hears that the visit is not open yet (with its local
// time) or has ended. An empty entry (a timeout) uses a try but is not a
// guess.
func (e *Engine) DialInPIN(ctx context.Context, callSID, from, digits string, try, tries int) (string, error) {
	v, err := e.visitByPIN(ctx, digits)
	if err != nil {
		return "", err
	}
	now := e.clock.Now()
	opens := time.Time{}
	if v != nil {
		opens = v.ScheduledAt.Add(-e.cfg.Visits.RoomLead)
	}
	switch {
	case v != nil && !now.Before(opens) && !v.Finished():
		return e.acceptDialIn(ctx, v, callSID, now)
	case v != nil && e.isPatientPhone(v, from) && v.Finished():
		return twiml.Goodbye(sayVisitOver), nil
	case v != nil && e.isPatientPhone(v, from): // not open yet
		return twiml.Goodbye(fmt.Sprintf("Your visit is scheduled for %s. Please call back within %d minutes of that time. Goodbye.",
			localTime(v, v.ScheduledAt), int(e.cfg.Visits.RoomLead.Minutes()))), nil
	}
	if digits != "" {
		if err := e.countFailedPIN(ctx, from, now); err != nil {
			return "", err
		}
	}
	if try >= tries {
		return twiml.Goodbye(sayNoOpenVisit), nil
	}
	return twiml.AskPIN(twiml.PINPrompt{Action: e.pinAction(try+1, tries), Digits: e.cfg.Visits.DialInPINDigits, Retry: true}), nil
}

// countFailedPIN counts a PIN that opened no visit against the caller and
// the budget; the one failure that uses the budget up is logged loudly
// (once per window, whichever replica counts it).
func (e *Engine) countFailedPIN(ctx context.Context, from string, now time.Time) error {
	c := e.cfg.Visits
	window, length := e.budgetWindow(now)
	_, everyone, err := e.store.AddDialInFailure(ctx, e.callerKey(from), c.DialInCallerFailureWindow, window, length)
	if err != nil {
		return err
	}
	if e.metrics != nil {
		e.metrics.DialInFailedPINs.Inc()
	}
	if everyone == c.DialInFailureBudget {
		if e.metrics != nil {
			e.metrics.DialInBudgetExhausted.Inc()
		}
		e.log.Error("DIAL-IN FAILED-PIN BUDGET USED UP: possible PIN guessing; until the window ends, callers other than an open visit's patient phone hold before the PIN prompt and get fewer tries",
			zap.Int("budget", c.DialInFailureBudget), zap.Duration("window", length),
			zap.Time("window_start", now.Truncate(length).UTC()),
			zap.Duration("hold", c.DialInLimitedHold), zap.Int("tries_per_call", c.DialInLimitedTriesPerCall))
	}
	return nil
}

// acceptDialIn records the dial-in and bridges the caller (or holds it
// while the room is opened).
func (e *Engine) acceptDialIn(ctx context.Context, v *visit.Visit, callSID string, now time.Time) (string, error) {
	if err := e.store.IndexCall(ctx, callSID, v.ID); err != nil {
		return "", err
	}
	_, v, err := e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		if v.MarkDone("dialin:"+callSID, now) {
			v.Log(visit.Entry{At: now, Source: visit.SourceVoice, Type: "dial-in", Summary: "patient dialed in by phone (PIN accepted)"})
		}
		if v.Room.SID == "" {
			v.Enqueue(roomEnsureJob(v))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return e.dialInConnect(v, 0), nil
}

// DialInConnect continues a caller who is holding for the room (hold counts
// the holds so far). The call must be one DialInPIN accepted for the visit.
func (e *Engine) DialInConnect(ctx context.Context, callSID, id string, hold int) (string, error) {
	got, err := e.store.VisitForCall(ctx, callSID)
	if errors.Is(err, visit.ErrNotFound) || (err == nil && got != id) {
		return twiml.Goodbye(sayVisitOver), nil
	}
	if err != nil {
		return "", err
	}
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, visit.ErrNotFound) {
		return twiml.Goodbye(sayVisitOver), nil
	}
	if err != nil {
		return "", err
	}
	return e.dialInConnect(v, hold), nil
}

func (e *Engine) dialInConnect(v *visit.Visit, hold int) string {
	switch {
	case v.Finished():
		return twiml.Goodbye(sayVisitOver)
	case v.Room.SID != "":
		return twiml.JoinRoom(v.Room.Name, v.DialInIdentity())
	case hold >= maxHolds:
		return twiml.Goodbye(sayNoRoom)
	}
	next := e.voiceURL("/twilio/voice/dialin/connect", v.ID, "hold", strconv.Itoa(hold+1))
	return twiml.Hold(next, holdSeconds)
}

// visitByPIN returns the visit holding pin, whatever its state and window,
// or nil.
func (e *Engine) visitByPIN(ctx context.Context, pin string) (*visit.Visit, error) {
	if len(pin) < minPINDigits || len(pin) > maxPINDigits || strings.Trim(pin, "0123456789") != "" {
		return nil, nil
	}
	id, err := e.store.VisitForPIN(ctx, pin)
	if errors.Is(err, visit.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := e.store.Get(ctx, id)
	if errors.Is(err, visit.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if v.DialIn.PIN != pin {
		return nil, nil
	}
	return v, nil
}

// pinHold is how long from now v's PIN stays reserved: until pinHoldAfter
// past scheduled_at, and at least an hour for a visit created late.
func pinHold(v *visit.Visit, now time.Time) time.Duration {
	return max(v.ScheduledAt.Add(pinHoldAfter).Sub(now), time.Hour)
}

// reservePIN picks a dial-in PIN of visits.dial_in_pin_digits that no
// visit whose window overlaps v's holds, and reserves it for v. The store
// reserves with one SET NX, so two visits never win the same PIN.
func (e *Engine) reservePIN(ctx context.Context, v *visit.Visit) (string, error) {
	for i := 0; i < pinTries; i++ {
		pin, err := e.newPIN()
		if err != nil {
			return "", err
		}
		ok, err := e.store.ReservePIN(ctx, pin, v.ID, pinHold(v, e.clock.Now()))
		if err != nil {
			return "", err
		}
		if ok {
			return pin, nil
		}
	}
	return "", errors.New("workflows: no free dial-in PIN")
}

// pinTries is how many random PINs a create tries before giving up.
const pinTries = 50

// newPIN draws a random dial-in PIN of visits.dial_in_pin_digits digits.
func (e *Engine) newPIN() (string, error) {
	digits := e.cfg.Visits.DialInPINDigits
	space := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	n, err := rand.Int(rand.Reader, space)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", digits, n), nil
}

// rememberPatientPhone marks v's patient phone (as its keyed hash) as a
// patient of a visit in its window, so the phone is not held while a
// guessing campaign runs. A failure only costs the patient that hold.
func (e *Engine) rememberPatientPhone(ctx context.Context, v *visit.Visit) {
	if v.Patient.Phone == "" {
		return
	}
	if err := e.store.RememberPatientPhone(ctx, e.callerKey(v.Patient.Phone), pinHold(v, e.clock.Now())); err != nil {
		e.log.Warn("dial-in: patient phone not remembered", zap.String("visit", v.ID), zap.Error(err))
	}
}

// keepPIN moves v's PIN reservation with its new schedule. Should the
// reservation have lapsed and another visit taken the PIN meanwhile, v
// gets a new PIN.
func (e *Engine) keepPIN(ctx context.Context, v *visit.Visit) (*visit.Visit, error) {
	if v.DialIn.PIN == "" {
		return v, nil
	}
	ok, err := e.store.HoldPIN(ctx, v.DialIn.PIN, v.ID, pinHold(v, e.clock.Now()))
	if err != nil || ok {
		return v, err
	}
	pin, err := e.reservePIN(ctx, v)
	if err != nil {
		return nil, err
	}
	now := e.clock.Now()
	_, v, err = e.update(ctx, v.ID, "", now, func(v *visit.Visit) error {
		v.DialIn.PIN = pin
		v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "dial-in-pin", Summary: "dial-in PIN replaced (the old one was taken while the visit moved)"})
		return nil
	})
	return v, err
}

// groupPIN writes a PIN in groups of three digits (the last two groups of
// two when one digit would be left alone), as people read and key it:
// "482 913 557".
func groupPIN(pin string) string {
	var groups []string
	for len(pin) > 0 {
		n := 3
		switch {
		case len(pin) == 4:
			n = 2
		case len(pin) < 3:
			n = len(pin)
		}
		groups = append(groups, pin[:n])
		pin = pin[n:]
	}
	return strings.Join(groups, " ")
}

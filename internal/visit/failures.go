package visit

import "strings"

// Timeline entry types that record something a support person must look at
// even though no Twilio status says "failed". Writers use them as the type
// or its suffix ("sms-outcome-unknown", "call-outcome-unknown"); the visit
// board lists every entry IsFailure reports under failures.
const (
	// EntryOutcomeUnknown: a request to Twilio got no answer we can trust
	// (a timeout or 5xx after it was sent), so whether the SMS went out or
	// the call was placed is unknown until reconciliation settles it.
	EntryOutcomeUnknown = "outcome-unknown"
	// EntryReconcileFailed: reading a room, participant or call back from
	// Twilio's REST API failed, so the visit may lag behind Twilio.
	EntryReconcileFailed = "reconcile-failed"
)

// IsFailure reports whether the entry records a failure: an SMS
// undelivered, a call or job failed, an outcome unknown, a reconciliation
// failed.
func (e Entry) IsFailure() bool {
	t := strings.ToLower(e.Type)
	return strings.Contains(t, "failed") || strings.Contains(t, "undelivered") ||
		strings.HasSuffix(t, EntryOutcomeUnknown)
}

package visit

import "strings"

// ReservedIdentityPrefixes start the participant identities visitflow makes
// for itself: the patient's phone leg (DialInIdentity), the interpreter leg
// (InterpreterIdentity) and invited guests. A provider or patient identity
// with one of them could pass for that participant (a patient named
// "interpreter-V-42" would be taken for the interpreter), so they are
// refused for people the API names.
var ReservedIdentityPrefixes = []string{"dialin-", "interpreter-", "guest-"}

// ReservedIdentity reports whether identity starts with a reserved prefix,
// in any letter case.
func ReservedIdentity(identity string) bool {
	lower := strings.ToLower(identity)
	for _, p := range ReservedIdentityPrefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

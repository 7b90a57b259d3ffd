package sandbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// maxTokenLife is the longest an access token may live: Twilio refuses a
// token whose exp is more than 24 h after its iat (20157).
const maxTokenLife = 24 * time.Hour

// tokenError is a refused access token: Twilio's error code and the HTTP
// status the control API answers with.
type tokenError struct {
	status, code int
	message      string
}

// checkAccessToken verifies a Video access token as Twilio does when a
// client connects with it to room as identity: HS256 signed with the secret
// of the API key in iss, for this account, not expired, valid already (nbf),
// living at most 24 h, with a video grant for the room (when it names one)
// and the identity. The key must be the emulator's (Options.APIKeySID).
func (e *Emulator) checkAccessToken(tok, room, identity string) *tokenError {
	bad := func(status, code int, msg string) *tokenError { return &tokenError{status, code, msg} }
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return bad(http.StatusUnauthorized, 20101, "Invalid Access Token")
	}
	var header struct {
		Alg string `json:"alg"`
		Cty string `json:"cty"`
	}
	var claims struct {
		Iss    string  `json:"iss"`
		Sub    string  `json:"sub"`
		Iat    float64 `json:"iat"`
		Nbf    float64 `json:"nbf"`
		Exp    float64 `json:"exp"`
		Grants struct {
			Identity string `json:"identity"`
			Video    *struct {
				Room string `json:"room"`
			} `json:"video"`
		} `json:"grants"`
	}
	if decodeSegment(parts[0], &header) != nil || decodeSegment(parts[1], &claims) != nil {
		return bad(http.StatusUnauthorized, 20101, "Invalid Access Token")
	}
	if header.Alg != "HS256" || e.opts.APIKeySID == "" || claims.Iss != e.opts.APIKeySID || claims.Sub != e.opts.AccountSID {
		return bad(http.StatusUnauthorized, 20103, "Invalid Access Token issuer/subject")
	}
	m := hmac.New(sha256.New, []byte(e.opts.APIKeySecret))
	m.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || subtle.ConstantTimeCompare(sig, m.Sum(nil)) != 1 {
		return bad(http.StatusUnauthorized, 20107, "Invalid Access Token signature")
	}
	now := float64(e.now().Unix())
	// Twilio's SDKs stamp no iat; twilio-go sets nbf to the minting time
	// unless told otherwise. The life is measured from the first of them
	// present, and never may reach more than 24 h past now.
	issued := claims.Iat
	if issued == 0 {
		issued = claims.Nbf
	}
	if issued == 0 || issued > now {
		issued = now
	}
	switch {
	case claims.Exp == 0 || claims.Exp <= now:
		return bad(http.StatusUnauthorized, 20104, "Access Token expired or expiration date invalid")
	case claims.Nbf != 0 && claims.Nbf > now:
		return bad(http.StatusUnauthorized, 20105, "Access Token not yet valid")
	case claims.Exp-issued > maxTokenLife.Seconds():
		return bad(http.StatusUnauthorized, 20157, "Expiration Time in the Access Token exceeds the maximum duration allowed (24 h)")
	case claims.Grants.Video == nil:
		return bad(http.StatusForbidden, 20106, "Invalid Access Token grants: no video grant")
	case claims.Grants.Video.Room != "" && claims.Grants.Video.Room != room:
		return bad(http.StatusForbidden, 20106, "Invalid Access Token grants: the grant is for another room")
	case claims.Grants.Identity != identity:
		return bad(http.StatusForbidden, 20106, "Invalid Access Token grants: the identity is not the token's")
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeTokenError answers a refused join like the control API's other
// errors, with Twilio's code alongside.
func writeTokenError(w http.ResponseWriter, te *tokenError) {
	writeJSON(w, te.status, map[string]any{
		"code": te.code, "message": te.message, "status": te.status,
		"error": map[string]any{"code": te.code, "message": te.message},
	})
}

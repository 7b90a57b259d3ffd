// Package twiliosig owns X-Twilio-Signature validation: computing the
// signature Twilio sends with every webhook, checking it for form posts, GET
// requests and JSON bodies, and rebuilding the URL Twilio signed when we sit
// behind a proxy.
//
// It is our own implementation rather than twilio-go's RequestValidator,
// which keeps only the first value of a repeated parameter and does not strip
// URL fragments, so it rejects genuine callbacks. The behaviour follows the
// official SDKs' test vectors (see twiliosig_test.go).
package twiliosig

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Header is the request header carrying Twilio's signature.
const Header = "X-Twilio-Signature"

var (
	// ErrMissing is returned by Check when the request has no signature.
	ErrMissing = errors.New("twiliosig: missing " + Header)
	// ErrInvalid is returned by Check when the signature does not match the
	// request (or the request carries a body the signature cannot cover).
	ErrInvalid = errors.New("twiliosig: invalid " + Header)
)

// Sign returns the base64 HMAC-SHA1 signature Twilio computes for a request
// to rawURL with the form parameters params (nil for GET and JSON requests).
// The fragment of rawURL is dropped; the rest is signed byte for byte, without
// any normalisation. Parameters are appended sorted by name (byte order); a
// repeated name contributes each distinct value once, values sorted, and a
// name without values or with an empty value contributes the name alone.
func Sign(authToken, rawURL string, params url.Values) string {
	mac := hmac.New(sha1.New, []byte(authToken))
	var sum [sha1.Size]byte
	var enc [28]byte
	return string(signInto(mac, stripFragment(rawURL), paramTail(params), sum[:0], enc[:0]))
}

// Verify reports whether signature is valid for a form POST with params (or
// a GET, when params is empty) to rawURL. Besides the URL as given it accepts
// the URL with its explicit port removed, or with :443 (https) / :80 (http)
// added when none is given, because Twilio signs Voice HTTPS callbacks
// without the port and other products with it. In the query, ' and %27 are
// interchangeable, as in twilio-node, which signs the WHATWG-escaped form.
// The comparison is constant-time. An empty authToken never verifies: anyone
// can compute an HMAC with an empty key.
func Verify(authToken, rawURL string, params url.Values, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	return verifyURL(authToken, rawURL, paramTail(params), signature)
}

// VerifyJSON reports whether signature is valid for a request to rawURL with
// a JSON body. Twilio signs only the URL for JSON and vouches for the body
// through a bodySHA256 query parameter, so VerifyJSON requires all three:
// rawURL carries bodySHA256, the URL signature matches (with the port variants
// Verify accepts), and the lowercase hex SHA-256 of body equals bodySHA256.
// Without bodySHA256 the body is unauthenticated and VerifyJSON is false.
func VerifyJSON(authToken, rawURL string, body []byte, signature string) bool {
	if authToken == "" || signature == "" {
		return false
	}
	want, ok := bodyHashParam(stripFragment(rawURL))
	if !ok {
		return false
	}
	sum := sha256.Sum256(body)
	got := hex.EncodeToString(sum[:])
	// Evaluate both checks before combining them so the time taken does not
	// say which one failed.
	urlOK := verifyURL(authToken, rawURL, nil, signature)
	bodyOK := subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	return urlOK && bodyOK
}

// RequestURL rebuilds the URL Twilio signed for r: publicBaseURL (the scheme,
// host and optional path prefix Twilio was configured with, e.g.
// "https://hooks.example.com" or "https://h.example.com/vf") followed by the
// request target exactly as received (r.RequestURI: raw path and raw query).
// The request's Host header and TLS state are ignored: behind a proxy they
// describe the proxy hop, not what Twilio signed, and the Host is chosen by
// the client. A trailing slash on publicBaseURL is ignored. When the target
// already starts with the base's path prefix (the proxy forwarded it rather
// than stripping it) the prefix is not repeated.
func RequestURL(publicBaseURL string, r *http.Request) string {
	base := strings.TrimRight(publicBaseURL, "/")
	target := r.RequestURI
	if target == "" {
		// Client-side requests (http.NewRequest) have no RequestURI.
		target = r.URL.RequestURI()
	}
	target = originForm(target)
	if prefix := basePath(base); prefix != "" {
		if rest, ok := strings.CutPrefix(target, prefix); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			target = rest
		}
	}
	return base + target
}

// Check validates the signature of r, whose body the caller has already read
// into body (and limited in size), against the URL rebuilt by RequestURL:
// a form-encoded body is verified with its parsed values (the query string
// belongs to the URL, not to the parameters), a JSON body with VerifyJSON,
// and a request without a body (GET) with the URL alone. It returns
// ErrMissing when the header is absent or empty and an error matching
// ErrInvalid when the signature does not match, the form body cannot be
// parsed, or the body has a content type the signature cannot cover.
func Check(authToken, publicBaseURL string, r *http.Request, body []byte) error {
	return check(authToken, publicBaseURL, r, body, nil)
}

// check is Check with the form body already parsed (form, nil: parse it).
func check(authToken, publicBaseURL string, r *http.Request, body []byte, form url.Values) error {
	sig := r.Header.Get(Header)
	if sig == "" {
		return ErrMissing
	}
	u := RequestURL(publicBaseURL, r)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var ok bool
	switch {
	case mediaType == "application/x-www-form-urlencoded":
		if form == nil {
			var err error
			if form, err = url.ParseQuery(string(body)); err != nil {
				return fmt.Errorf("%w: form body: %v", ErrInvalid, err)
			}
		}
		ok = Verify(authToken, u, form, sig)
	case mediaType == "application/json":
		ok = VerifyJSON(authToken, u, body, sig)
	case len(body) == 0:
		ok = Verify(authToken, u, nil, sig)
	default:
		// The signature covers form values or a bodySHA256, nothing else:
		// accepting this body would accept bytes nobody vouched for.
		return fmt.Errorf("%w: unsigned %q body", ErrInvalid, mediaType)
	}
	if !ok {
		return ErrInvalid
	}
	return nil
}

// CheckAny is Check with several auth tokens, for an account whose token is
// being rotated (Twilio signs with the primary; during the rotation that
// may be either of two) or whose callbacks come from sub-accounts with their
// own tokens: nil when the signature is valid under any of authTokens.
// Empty tokens are skipped; with none left the request is ErrInvalid.
func CheckAny(authTokens []string, publicBaseURL string, r *http.Request, body []byte) error {
	return CheckAnyForm(authTokens, publicBaseURL, r, body, nil)
}

// CheckAnyForm is CheckAny for a caller that has already parsed the form
// body into form (the webhook edge needs the values anyway), so the body
// is not parsed once per token. A nil form is parsed from body.
func CheckAnyForm(authTokens []string, publicBaseURL string, r *http.Request, body []byte, form url.Values) error {
	if r.Header.Get(Header) == "" {
		return ErrMissing
	}
	err := ErrInvalid
	for _, token := range authTokens {
		if token == "" {
			continue
		}
		if err = check(token, publicBaseURL, r, body, form); err == nil {
			return nil
		}
	}
	return err
}

// verifyURL tries every accepted spelling of rawURL with the parameter tail.
// It returns as soon as one matches; that reveals which spelling matched, not
// anything about the expected signature.
func verifyURL(authToken, rawURL string, tail []byte, signature string) bool {
	mac := hmac.New(sha1.New, []byte(authToken))
	want := []byte(signature)
	var sum [sha1.Size]byte
	var enc [28]byte
	return eachCandidate(stripFragment(rawURL), func(u string) bool {
		return hmac.Equal(signInto(mac, u, tail, sum[:0], enc[:0]), want)
	})
}

// signInto computes the base64 signature of u+tail with mac, using sum and
// dst as scratch space so that verifying several candidates does not allocate.
func signInto(mac hash.Hash, u string, tail, sum, dst []byte) []byte {
	mac.Reset()
	io.WriteString(mac, u)
	mac.Write(tail)
	return base64.StdEncoding.AppendEncode(dst, mac.Sum(sum))
}

// eachCandidate calls f with each spelling of u that Twilio may have signed
// until f returns true: as given, with the port variant, and each of those
// with ' and %27 swapped in the query.
func eachCandidate(u string, f func(string) bool) bool {
	for i, p := range [2]string{u, portVariant(u)} {
		if i > 0 && p == "" {
			continue // no port variant; u itself may legitimately be ""
		}
		if f(p) {
			return true
		}
		q := strings.IndexByte(p, '?')
		if q < 0 {
			continue
		}
		query := p[q:]
		if strings.Contains(query, "'") && f(p[:q]+strings.ReplaceAll(query, "'", "%27")) {
			return true
		}
		if strings.Contains(query, "%27") && f(p[:q]+strings.ReplaceAll(query, "%27", "'")) {
			return true
		}
	}
	return false
}

// portVariant returns u with its explicit port removed, or with the scheme's
// default port added when it has none; "" when neither applies. It edits the
// string rather than going through url.URL, which would lower-case the scheme
// and re-escape the path, changing what was signed.
func portVariant(u string) string {
	i := strings.Index(u, "://")
	if i <= 0 {
		return ""
	}
	start := i + 3
	end := len(u)
	if j := strings.IndexAny(u[start:], "/?"); j >= 0 {
		end = start + j
	}
	authority := u[start:end]
	hostStart := start + strings.LastIndexByte(authority, '@') + 1
	hostport := u[hostStart:end]
	// The port's colon comes after the closing bracket of an IPv6 literal.
	colon := strings.LastIndexByte(hostport, ':')
	if colon >= 0 && colon > strings.LastIndexByte(hostport, ']') && allDigits(hostport[colon+1:]) {
		return u[:hostStart+colon] + u[end:]
	}
	var port string
	switch strings.ToLower(u[:i]) {
	case "https":
		port = ":443"
	case "http":
		port = ":80"
	default:
		return ""
	}
	return u[:end] + port + u[end:]
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// paramTail is the parameter part of the signed string: names sorted by
// byte order, each followed by one of its distinct values, values sorted.
// Repeated values are deduplicated and sorted because that is what Twilio
// signs (python's and node's vectors); twilio-go signs only the first value.
func paramTail(params url.Values) []byte {
	if len(params) == 0 {
		return nil
	}
	keys := make([]string, 0, len(params))
	n := 0
	for k, vs := range params {
		keys = append(keys, k)
		n += len(k)
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	slices.Sort(keys)
	tail := make([]byte, 0, n)
	for _, k := range keys {
		vs := params[k]
		switch len(vs) {
		case 0:
			// A name without values is signed like an empty value (java's
			// null parameters).
			tail = append(tail, k...)
		case 1:
			tail = append(tail, k...)
			tail = append(tail, vs[0]...)
		default:
			vs = slices.Compact(slices.Sorted(slices.Values(vs)))
			for _, v := range vs {
				tail = append(tail, k...)
				tail = append(tail, v...)
			}
		}
	}
	return tail
}

// stripFragment drops "#…": connection overrides such as #rc=2&rp=all are
// configured on the URL but not sent, so Twilio does not sign them.
func stripFragment(u string) string {
	u, _, _ = strings.Cut(u, "#")
	return u
}

// bodyHashParam returns the first bodySHA256 query parameter of u.
func bodyHashParam(u string) (string, bool) {
	_, query, ok := strings.Cut(u, "?")
	if !ok {
		return "", false
	}
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if k != "bodySHA256" {
			continue
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		return v, true
	}
	return "", false
}

// originForm turns an absolute-form request target ("http://host/path?q",
// as sent to forward proxies) into origin form ("/path?q").
func originForm(target string) string {
	if strings.HasPrefix(target, "/") || target == "*" {
		return target
	}
	i := strings.Index(target, "://")
	if i < 0 {
		return target
	}
	rest := target[i+3:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		return ""
	}
	return rest[j:]
}

// basePath returns the path prefix of a base URL ("/vf" for
// "https://h.example.com/vf"), "" when it has none.
func basePath(base string) string {
	i := strings.Index(base, "://")
	if i < 0 {
		return ""
	}
	rest := base[i+3:]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return ""
	}
	p := rest[j:]
	p, _, _ = strings.Cut(p, "?")
	return p
}

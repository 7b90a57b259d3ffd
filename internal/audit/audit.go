// Package audit is the vocabulary of the audit trail (HIPAA's audit
// controls): who read or changed which visit's record, when, through which
// route, and how the request ended. A Record never holds PHI: actors are
// token names and admin user names, actions are route templates (never
// paths with secrets, queries or bodies), visits are ids.
//
// The HTTP edge records every request that reads or changes a visit
// (handlers/audit.go); internal/store keeps the records (a stream per day,
// plus one per visit for reading a visit's trail), workflows trims them
// after audit.retention. The package imports only the standard library.
package audit

import (
	"context"
	"sync"
	"time"
)

// Record is one audited request.
type Record struct {
	// ID is the store's id of the record (set on read; a cursor position).
	ID string `json:"id,omitempty"`
	// At is when the request was answered.
	At time.Time `json:"at"`
	// Actor is who: TokenActor(name), AdminActor(user) or InviteActor.
	Actor string `json:"actor"`
	// Action is the method and route template ("GET /v1/visits/{id}").
	Action string `json:"action"`
	// Visits are the ids of the visits the request read or changed.
	Visits []string `json:"visits,omitempty"`
	// Status is the HTTP status the request was answered with.
	Status int `json:"status"`
}

// Query selects records, oldest first.
type Query struct {
	// Visit, when set, keeps records of that visit only.
	Visit string
	// From and To bound At (zero To: now; zero From: for a visit the
	// beginning of its trail, else seven days before To).
	From, To time.Time
	// Cursor continues a previous page (opaque).
	Cursor string
	// Limit bounds the page (1–1000).
	Limit int
}

// Actors.
const (
	// InviteActor is the patient or guest holding an invite link
	// (POST /v1/join/{invite}): the invite is their credential.
	InviteActor = "invite"
)

// TokenActor names a request made with the API token called name.
func TokenActor(name string) string { return "token:" + name }

// AdminActor names a request of the admin pages' user.
func AdminActor(user string) string { return "admin:" + user }

type actorKey struct{}

// WithActor returns ctx carrying who makes the request (set by the
// authentication middleware once the credential is checked).
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor WithActor set, or "".
func ActorFrom(ctx context.Context) string {
	s, _ := ctx.Value(actorKey{}).(string)
	return s
}

// Touched collects the visits a request read or changed beyond the one its
// route names (a list, a create, an invite's visit).
type Touched struct {
	mu     sync.Mutex
	visits []string
}

type touchedKey struct{}

// WithTouched returns ctx carrying an empty Touched for one request.
func WithTouched(ctx context.Context) (context.Context, *Touched) {
	t := &Touched{}
	return context.WithValue(ctx, touchedKey{}, t), t
}

// Touch records that the request read or changed the visits ids. Outside
// an audited request it does nothing.
func Touch(ctx context.Context, ids ...string) {
	t, _ := ctx.Value(touchedKey{}).(*Touched)
	if t == nil {
		return
	}
	t.mu.Lock()
	t.visits = append(t.visits, ids...)
	t.mu.Unlock()
}

// Visits returns the touched visit ids, each once, in the order touched.
func (t *Touched) Visits() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[string]bool, len(t.visits))
	var out []string
	for _, id := range t.visits {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/visitflow/visitflow/internal/audit"
	"github.com/visitflow/visitflow/internal/visit"
)

// PersonInput is a provider or patient as the API receives it.
type PersonInput struct {
	Identity string `json:"identity"`
	Name     string `json:"name"`
	Phone    string `json:"phone"`
}

// CreateInput is the body of POST /v1/visits.
type CreateInput struct {
	ID          string      `json:"id"`
	ScheduledAt string      `json:"scheduled_at"`
	Timezone    string      `json:"timezone"`
	Provider    PersonInput `json:"provider"`
	Patient     PersonInput `json:"patient"`
}

// normalize checks the input and fills defaults; errors name the field.
func (in *CreateInput) normalize() (time.Time, *time.Location, error) {
	if in.ID != "" && !visit.ValidID(in.ID) {
		return time.Time{}, nil, badField("id", "must match [A-Za-z0-9_-]{1,64}")
	}
	if in.ScheduledAt == "" {
		return time.Time{}, nil, badField("scheduled_at", "is required (RFC 3339)")
	}
	at, err := time.Parse(time.RFC3339, in.ScheduledAt)
	if err != nil {
		return time.Time{}, nil, badField("scheduled_at", "must be an RFC 3339 time like 2026-12-01T15:00:00Z")
	}
	if in.Timezone == "" {
		in.Timezone = "UTC"
	}
	loc, err := loadZone(in.Timezone)
	if err != nil {
		return time.Time{}, nil, badField("timezone", "must be an IANA time zone like America/New_York")
	}
	for _, p := range []struct {
		field string
		in    *PersonInput
	}{{"provider", &in.Provider}, {"patient", &in.Patient}} {
		if err := p.in.check(p.field); err != nil {
			return time.Time{}, nil, err
		}
	}
	return at.UTC(), loc, nil
}

func loadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, errors.New("local is not a zone")
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	// time.LoadLocation reads and parses the zone file each time: a tenth
	// of a batch create's CPU before this cache (docs/benchmarks.md).
	loc, err := time.LoadLocation(name)
	if err == nil {
		zones.Store(name, loc)
	}
	return loc, err
}

// zones caches the zones loadZone loaded, by name.
var zones sync.Map

func (p *PersonInput) check(field string) error {
	p.Identity = strings.TrimSpace(p.Identity)
	if err := checkIdentity(field+".identity", p.Identity); err != nil {
		return err
	}
	if err := checkName(field+".name", p.Name); err != nil {
		return err
	}
	if p.Phone != "" && !visit.ValidPhone(p.Phone) {
		return badField(field+".phone", "must be an E.164 number like +15551230001")
	}
	return nil
}

func (p PersonInput) person() visit.Person {
	return visit.Person{Identity: p.Identity, Name: p.Name, Phone: p.Phone}
}

// CreateVisit creates a visit. With a client-supplied id it is idempotent:
// the same body returns the existing visit (created=false); a different body
// is ErrConflict.
func (e *Engine) CreateVisit(ctx context.Context, in CreateInput) (*visit.Visit, bool, error) {
	v, sum, err := e.newVisit(ctx, in)
	if err != nil {
		return nil, false, err
	}
	if existing, err := e.store.Get(ctx, v.ID); err == nil {
		return e.sameOrConflict(existing, sum)
	} else if !errors.Is(err, visit.ErrNotFound) {
		return nil, false, err
	}
	pin, err := e.reservePIN(ctx, v)
	if err != nil {
		return nil, false, err
	}
	// Unless the visit gets stored, its PIN goes back (a failed create, a
	// create that lost the race for its id to another, a panic).
	kept := false
	defer func() {
		if !kept {
			e.releasePIN(pin, v.ID)
		}
	}()
	jobs := e.scheduleNew(v, pin)
	stored, created, err := e.store.Create(ctx, v)
	if err != nil {
		return nil, false, err
	}
	if !created {
		return e.sameOrConflict(stored, sum)
	}
	kept = true
	e.flush(ctx, v.ID, jobs)
	e.rememberPatientPhone(ctx, stored)
	return stored, true, nil
}

// newVisit checks a create's input and returns the visit it describes,
// not yet stored, with no PIN and nothing scheduled, and the request's
// fingerprint.
func (e *Engine) newVisit(ctx context.Context, in CreateInput) (*visit.Visit, requestSum, error) {
	at, _, err := in.normalize()
	if err != nil {
		return nil, requestSum{}, err
	}
	if err := e.checkHorizon(at); err != nil {
		return nil, requestSum{}, err
	}
	if in.Provider.Identity == in.Patient.Identity {
		return nil, requestSum{}, badField("patient.identity", "must differ from provider.identity")
	}
	sum := requestHash(in)
	if in.ID == "" {
		in.ID = newVisitID()
	}
	audit.Touch(ctx, in.ID) // the id is not in the route (batch: one of many)
	now := e.clock.Now()
	return &visit.Visit{
		ID:          in.ID,
		ScheduledAt: at,
		Timezone:    in.Timezone,
		Provider:    in.Provider.person(),
		Patient:     in.Patient.person(),
		Room:        visit.Room{Name: visit.RoomName(in.ID)},
		CreatedAt:   now,
		UpdatedAt:   now,
		RequestHash: sum.short(),
	}, sum, nil
}

// scheduleNew gives a new visit its PIN, its first timeline entry and its
// schedule's jobs, and returns the jobs (the outbox entries its create
// commits).
func (e *Engine) scheduleNew(v *visit.Visit, pin string) []visit.Job {
	v.DialIn = visit.DialIn{Number: e.cfg.Twilio.FromNumber, PIN: pin}
	// The timeline's creation row is derived from the record when read
	// (visit.CreationEntry): a scheduled visit has no timeline key yet.
	e.schedule(v, v.CreatedAt)
	return v.PendingJobs()
}

func (e *Engine) sameOrConflict(existing *visit.Visit, sum requestSum) (*visit.Visit, bool, error) {
	if !sum.matches(existing.RequestHash) {
		return nil, false, ErrConflict
	}
	return existing, false, nil
}

// requestSum is the SHA-256 of a create's normalized input.
type requestSum [sha256.Size]byte

func requestHash(in CreateInput) requestSum {
	b, _ := json.Marshal(in)
	return sha256.Sum256(b)
}

// short is the fingerprint a visit stores: the sum's first 128 bits in
// base64url, 22 characters (every visit record is read and written on
// each change; the 64 hex characters it stored before were a tenth of a
// new visit's JSON).
func (s requestSum) short() string { return base64.RawURLEncoding.EncodeToString(s[:16]) }

// matches reports whether stored, a visit's RequestHash, fingerprints the
// request of sum: short, or the whole sum in hex on visits stored before.
func (s requestSum) matches(stored string) bool {
	if len(stored) == 2*sha256.Size {
		return stored == hex.EncodeToString(s[:])
	}
	return stored == s.short()
}

func newVisitID() string {
	h, _ := randomHex(8) // crypto/rand does not fail on supported platforms
	return "V-" + strings.ToUpper(h)
}

// Visit returns a visit and its timeline, each entry with its state.
func (e *Engine) Visit(ctx context.Context, id string) (*visit.Visit, []visit.Entry, error) {
	v, tl, err := e.store.GetWithTimeline(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return v, v.WithStates(tl), nil
}

// ListVisits returns a page of visits, newest schedule first.
func (e *Engine) ListVisits(ctx context.Context, q visit.ListQuery) ([]*visit.Visit, string, error) {
	visits, next, err := e.store.List(ctx, q)
	for _, v := range visits {
		audit.Touch(ctx, v.ID) // every listed visit was read
	}
	return visits, next, err
}

// CancelVisit cancels a visit; a finished visit is visit.ErrInvalidChange.
func (e *Engine) CancelVisit(ctx context.Context, id string) (*visit.Visit, error) {
	now := e.clock.Now()
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		changed, err := v.Cancel(now)
		if err != nil {
			return err
		}
		if changed {
			v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "cancelled", Summary: "visit cancelled"})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// PatchInput is the body of PATCH /v1/visits/{id}: every field optional.
type PatchInput struct {
	ScheduledAt *string      `json:"scheduled_at"`
	Timezone    *string      `json:"timezone"`
	Provider    *PersonPatch `json:"provider"`
	Patient     *PersonPatch `json:"patient"`
}

// PersonPatch updates a person's contact details (not the identity).
type PersonPatch struct {
	Name  *string `json:"name"`
	Phone *string `json:"phone"`
}

// UpdateVisit reschedules a visit and/or updates contact details. A new
// scheduled_at or timezone starts a new schedule generation: the old
// schedule's reminders and checks are deleted from the queues (and would do
// nothing if they ran anyway) and the new ones are enqueued. Only a visit
// nobody has joined yet can be rescheduled (visit.ErrInvalidChange).
func (e *Engine) UpdateVisit(ctx context.Context, id string, in PatchInput) (*visit.Visit, error) {
	var at *time.Time
	if in.ScheduledAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ScheduledAt)
		if err != nil {
			return nil, badField("scheduled_at", "must be an RFC 3339 time like 2026-12-01T15:00:00Z")
		}
		t = t.UTC()
		if err := e.checkHorizon(t); err != nil {
			return nil, err
		}
		at = &t
	}
	if in.Timezone != nil {
		if _, err := loadZone(*in.Timezone); err != nil || *in.Timezone == "" {
			return nil, badField("timezone", "must be an IANA time zone like America/New_York")
		}
	}
	for _, p := range []struct {
		field string
		p     *PersonPatch
	}{{"provider", in.Provider}, {"patient", in.Patient}} {
		if p.p != nil && p.p.Phone != nil && *p.p.Phone != "" && !visit.ValidPhone(*p.p.Phone) {
			return nil, badField(p.field+".phone", "must be an E.164 number like +15551230001")
		}
		if p.p != nil && p.p.Name != nil {
			if err := checkName(p.field+".name", *p.p.Name); err != nil {
				return nil, err
			}
		}
	}
	now := e.clock.Now()
	rescheduled := false
	_, v, err := e.update(ctx, id, "", now, func(v *visit.Visit) error {
		rescheduled = false
		applyPerson(&v.Provider, in.Provider)
		applyPerson(&v.Patient, in.Patient)
		newAt, newTZ := v.ScheduledAt, v.Timezone
		if at != nil {
			newAt = *at
		}
		if in.Timezone != nil {
			newTZ = *in.Timezone
		}
		if newAt.Equal(v.ScheduledAt) && newTZ == v.Timezone {
			return nil
		}
		if v.State() != visit.Scheduled {
			return v.Refuse("reschedule")
		}
		old := v.ScheduledAt
		dropScheduleTimers(v)
		v.Schedule++
		v.Reschedule(newAt)
		v.Timezone = newTZ
		v.Log(visit.Entry{At: now, Source: visit.SourceAPI, Type: "rescheduled",
			Summary: "rescheduled from " + old.Format(time.RFC3339) + " to " + newAt.Format(time.RFC3339)})
		e.schedule(v, now)
		rescheduled = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rescheduled {
		if err := e.store.Reschedule(ctx, id, v.ScheduledAt); err != nil {
			return nil, err
		}
		if v, err = e.keepPIN(ctx, v); err != nil {
			return nil, err
		}
	}
	if rescheduled || (in.Patient != nil && in.Patient.Phone != nil) {
		e.rememberPatientPhone(ctx, v)
	}
	return v, nil
}

func applyPerson(p *visit.Person, in *PersonPatch) {
	if in == nil {
		return
	}
	if in.Name != nil {
		p.Name = *in.Name
	}
	if in.Phone != nil {
		p.Phone = *in.Phone
	}
}

package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/visitflow/visitflow/internal/store"
	"github.com/visitflow/visitflow/internal/visit"
)

// Update starts from the visit as this store last left it (recent.go).
// These tests have a second store, another replica, change the visit in
// between: the first store must apply its change to the visit as Redis
// has it, never to its own older copy.

// twoReplicas returns two stores on the same data and a visit created
// through the first one.
func twoReplicas(t *testing.T) (a, b *store.Store) {
	t.Helper()
	a, conn, ns := newStoreOn(t)
	b = store.New(conn.Client, ns)
	if _, _, err := a.Create(context.Background(), newVisit("V-1", t0)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func setTimezone(tz string) func(v *visit.Visit) error {
	return func(v *visit.Visit) error {
		v.Timezone = tz
		return nil
	}
}

func TestUpdateAfterAnotherReplicaWroteKeepsBothChanges(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	for _, step := range []struct {
		s   *store.Store
		sid string
	}{{a, "PA1"}, {b, "PA2"}, {a, "PA3"}, {a, "PA4"}, {b, "PA5"}, {a, "PA6"}} {
		if _, err := step.s.Update(ctx, "V-1", "tok-"+step.sid, connectProvider(step.sid)); err != nil {
			t.Fatalf("connect %s: %v", step.sid, err)
		}
	}
	v, err := a.Get(ctx, "V-1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.Facts.Participants); n != 6 {
		t.Errorf("participants = %d (%v); want all 6, whichever replica wrote them", n, v.Facts.Participants)
	}
	timeline, err := a.Timeline(ctx, "V-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := countType(timeline, "participant-connected"); got != 6 {
		t.Errorf("participant-connected rows = %d; want 6", got)
	}
}

// connectProvider records the provider ("dr" in newVisit) connecting as
// sid: a participant kept in the visit's record, not with the guests.
func connectProvider(sid string) func(v *visit.Visit) error {
	return func(v *visit.Visit) error {
		if v.ParticipantConnected(sid, "dr", t0) {
			v.Log(visit.Entry{At: t0, Source: visit.SourceVideo, Type: "participant-connected", Summary: sid})
		}
		return nil
	}
}

func countType(entries []visit.Entry, typ string) int {
	n := 0
	for _, e := range entries {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// A change that, against this store's copy, would change nothing, still
// happens when another replica changed the visit meanwhile.
func TestUpdateThatLooksUnchangedOnAnOlderCopyIsAppliedToTheCurrentVisit(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	steps := []struct {
		s  *store.Store
		tz string
	}{{a, "Europe/Paris"}, {b, "America/Chicago"}, {a, "Europe/Paris"}}
	for _, step := range steps {
		if _, err := step.s.Update(ctx, "V-1", "", setTimezone(step.tz)); err != nil {
			t.Fatal(err)
		}
	}
	v, err := b.Get(ctx, "V-1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Timezone != "Europe/Paris" {
		t.Errorf("timezone = %q; want the last change, Europe/Paris", v.Timezone)
	}
}

// A refusal by fn counts only when it is about the visit as it is now.
func TestUpdateRefusedOnlyByTheCurrentVisit(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	if _, err := a.Update(ctx, "V-1", "", setTimezone("Europe/Paris")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "V-1", "", setTimezone("America/Chicago")); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused: still in Paris")
	_, err := a.Update(ctx, "V-1", "", func(v *visit.Visit) error {
		if v.Timezone == "Europe/Paris" {
			return refused
		}
		v.Timezone = "Asia/Tokyo"
		return nil
	})
	if err != nil {
		t.Fatalf("Update = %v; want it applied to the visit as it is (America/Chicago)", err)
	}
	if v, _ := a.Get(ctx, "V-1"); v.Timezone != "Asia/Tokyo" {
		t.Errorf("timezone = %q; want Asia/Tokyo", v.Timezone)
	}
}

// A visit deleted and created again under the same id, then changed as
// often as its earlier self was, is not mistaken for that earlier self.
func TestVisitCreatedAgainIsNotMistakenForItsEarlierSelf(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	if _, err := a.Update(ctx, "V-1", "", setTimezone("Europe/Paris")); err != nil {
		t.Fatal(err)
	}
	if deleted, err := b.Delete(ctx, "V-1", func(*visit.Visit) bool { return false }); err != nil || !deleted {
		t.Fatalf("Delete = %v, %v", deleted, err)
	}
	if _, _, err := b.Create(ctx, newVisit("V-1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "V-1", "", setTimezone("America/Chicago")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, "V-1", "tok-1", connectAt("PA1")); err != nil {
		t.Fatal(err)
	}
	v, err := b.Get(ctx, "V-1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Timezone != "America/Chicago" {
		t.Errorf("timezone = %q; want America/Chicago, not the deleted visit's Europe/Paris", v.Timezone)
	}
	if _, ok := v.Facts.Participants["PA1"]; !ok {
		t.Errorf("participant PA1 missing from %v", v.Facts.Participants)
	}
}

func TestUpdateOfAVisitAnotherReplicaDeletedIsNotFound(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	if _, err := a.Update(ctx, "V-1", "tok-1", connectAt("PA1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Delete(ctx, "V-1", func(*visit.Visit) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, "V-1", "tok-2", connectAt("PA2")); !errors.Is(err, visit.ErrNotFound) {
		t.Fatalf("Update of a deleted visit = %v; want visit.ErrNotFound", err)
	}
	if _, err := a.Get(ctx, "V-1"); !errors.Is(err, visit.ErrNotFound) {
		t.Errorf("Get = %v; the update must not have created the visit again", err)
	}
}

// Guests another replica added are seen by a change about one of them and
// by a change about the whole visit.
func TestGuestsAnotherReplicaAddedAreSeen(t *testing.T) {
	ctx := context.Background()
	a, b := twoReplicas(t)
	if _, err := a.UpdateParticipant(ctx, "V-1", "tok-1", "PA1", connectAt("PA1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateParticipant(ctx, "V-1", "tok-2", "PG1", connectAt("PG1")); err != nil {
		t.Fatal(err)
	}
	var saw bool
	if _, err := a.UpdateParticipant(ctx, "V-1", "tok-3", "PG1", func(v *visit.Visit) error {
		p := v.Facts.Participants["PG1"]
		saw = p != nil
		if p != nil {
			p.Identity = "guest-PG1-renamed"
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !saw {
		t.Error("a change about guest PG1 did not see it")
	}
	if _, err := b.UpdateParticipant(ctx, "V-1", "tok-4", "PG2", connectAt("PG2")); err != nil {
		t.Fatal(err)
	}
	var guests int
	if _, err := a.Update(ctx, "V-1", "", func(v *visit.Visit) error {
		guests = 0
		for _, p := range v.Facts.Participants {
			if v.RoleOf(p.Identity) == visit.RoleGuest {
				guests++
			}
		}
		v.Timezone = "Europe/Paris"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if guests != 3 { // connectAt makes every participant a guest: PA1, PG1, PG2
		t.Errorf("a change about the whole visit saw %d guests; want 3", guests)
	}
	v, err := b.Get(ctx, "V-1")
	if err != nil {
		t.Fatal(err)
	}
	if p := v.Facts.Participants["PG1"]; p == nil || p.Identity != "guest-PG1-renamed" {
		t.Errorf("guest PG1 = %+v; want the change about it", p)
	}
	if v.Timezone != "Europe/Paris" || v.Facts.Participants["PG2"] == nil {
		t.Errorf("visit = timezone %q, participants %v; want every change", v.Timezone, v.Facts.Participants)
	}
}

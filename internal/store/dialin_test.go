package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/redisx"
	"github.com/visitflow/visitflow/internal/redisx/redistest"
	"github.com/visitflow/visitflow/internal/store"
)

// newNamespacedStore is a store in a namespace of its own, returned so key
// patterns match this test's keys only (on a shared Cluster too).
func newNamespacedStore(t *testing.T) (*store.Store, *redisx.Conn, string) {
	t.Helper()
	conn, err := redisx.Connect(context.Background(), redistest.ForTest(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ns := redistest.Namespace(t)
	return store.New(conn.Client, store.WithNamespace(ns)), conn, ns
}

func allKeys(t *testing.T, conn *redisx.Conn, pattern string) []string {
	t.Helper()
	keys, err := redistest.AllKeys(context.Background(), conn.Client, pattern)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestPINIsReservedForOneVisitAtATime: of many visits racing for one PIN
// exactly one wins it, and only that visit can move its reservation; a
// lapsed reservation is free again.
func TestPINIsReservedForOneVisitAtATime(t *testing.T) {
	s, conn, ns := newNamespacedStore(t)
	ctx := context.Background()
	const pin = "482913557"
	var wg sync.WaitGroup
	won := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('A' + i))
			ok, err := s.ReservePIN(ctx, pin, id, time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won <- id
			}
		}()
	}
	wg.Wait()
	close(won)
	var winners []string
	for id := range won {
		winners = append(winners, id)
	}
	if len(winners) != 1 {
		t.Fatalf("ReservePIN winners = %v; want exactly one", winners)
	}
	owner, other := winners[0], "not-"+winners[0]
	if got, err := s.VisitForPIN(ctx, pin); err != nil || got != owner {
		t.Fatalf("VisitForPIN = %q, %v; want %q", got, err, owner)
	}

	// A reschedule three days out moves the owner's reservation with it.
	if ok, err := s.HoldPIN(ctx, pin, owner, 72*time.Hour); err != nil || !ok {
		t.Fatalf("HoldPIN(owner) = %v, %v; want true", ok, err)
	}
	if ok, err := s.HoldPIN(ctx, pin, other, 72*time.Hour); err != nil || ok {
		t.Fatalf("HoldPIN(other visit) = %v, %v; want false while the owner holds it", ok, err)
	}
	keys, err := redistest.AllKeys(ctx, conn.Client, ns+":*"+pin+"*")
	if err != nil || len(keys) != 1 {
		t.Fatalf("PIN keys = %v, %v; want one", keys, err)
	}
	if ttl := conn.Client.PTTL(ctx, keys[0]).Val(); ttl < 71*time.Hour {
		t.Fatalf("PIN reservation lasts %s after HoldPIN(72h); want the moved window", ttl)
	}

	// Lapsed (here: deleted), the PIN is anyone's: HoldPIN takes it.
	conn.Client.Del(ctx, keys[0])
	if ok, err := s.HoldPIN(ctx, pin, other, time.Hour); err != nil || !ok {
		t.Fatalf("HoldPIN on a lapsed PIN = %v, %v; want true", ok, err)
	}
	if got, _ := s.VisitForPIN(ctx, pin); got != other {
		t.Fatalf("VisitForPIN after the lapse = %q; want %q", got, other)
	}
}

// TestDialInCountersExpireAndCountEveryone: the caller's and everyone's
// wrong PINs are counted separately, each with an expiry from its first
// count, and a patient phone mark only ever lasts longer.
func TestDialInCountersExpireAndCountEveryone(t *testing.T) {
	s, conn, ns := newNamespacedStore(t)
	ctx := context.Background()
	for i, caller := range []string{"a", "a", "b"} {
		mine, everyone, err := s.AddDialInFailure(ctx, caller, time.Hour, "w1", 2*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if wantMine := map[int]int{0: 1, 1: 2, 2: 1}[i]; mine != wantMine || everyone != i+1 {
			t.Fatalf("AddDialInFailure #%d (%s) = %d, %d; want %d, %d", i+1, caller, mine, everyone, wantMine, i+1)
		}
	}
	for _, k := range allKeys(t, conn, ns+":*rl:dialin*") {
		if ttl := conn.Client.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 2*time.Hour {
			t.Errorf("counter %s expires in %s; want within its window", k, ttl)
		}
	}
	if err := s.RememberPatientPhone(ctx, "p", 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.RememberPatientPhone(ctx, "p", time.Hour); err != nil { // a second, earlier visit
		t.Fatal(err)
	}
	mine, everyone, patient, err := s.DialInStanding(ctx, "a", "w1", "p")
	if err != nil || mine != 2 || everyone != 3 || !patient {
		t.Fatalf("DialInStanding(a, w1, p) = %d, %d, %v, %v; want 2, 3, true", mine, everyone, patient, err)
	}
	if _, everyone, patient, _ := s.DialInStanding(ctx, "c", "w2", "q"); everyone != 0 || patient {
		t.Fatalf("DialInStanding in a new window for an unknown phone = %d, %v; want 0, false", everyone, patient)
	}
	for _, k := range allKeys(t, conn, ns+":*patient-phone*") {
		if ttl := conn.Client.PTTL(ctx, k).Val(); ttl < 47*time.Hour {
			t.Errorf("patient phone mark expires in %s; a later, shorter visit must not shorten it", ttl)
		}
	}
}

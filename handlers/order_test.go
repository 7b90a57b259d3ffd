package handlers_test

import (
	"fmt"
	"math/rand"
	"net/http"
	"sort"
	"sync"
	"testing"

	"github.com/visitflow/visitflow/handlers"
	"github.com/visitflow/visitflow/internal/testenv"
)

// generateVisit makes the callbacks of a plausible visit: patient, provider
// and guests connect, drop and reconnect with new ParticipantSids; the room
// usually ends.
func generateVisit(rng *rand.Rand) []cb {
	var out []cb
	n := 0
	for _, who := range []string{"pat-8812", "dr-lee", "guest-a", "guest-b"} {
		min := rng.Intn(8)
		for k := rng.Intn(3); k >= 0; k-- {
			n++
			sid := fmt.Sprintf("PA%032d", n)
			out = append(out, join(sid, who, min))
			min += 1 + rng.Intn(9)
			if rng.Intn(4) == 0 {
				break // still connected when the room ends
			}
			out = append(out, leave(sid, who, min))
			min += rng.Intn(3)
		}
	}
	if rng.Intn(4) > 0 {
		out = append(out, roomEnd(60))
	}
	return out
}

// summary renders what must not differ between two visits fed the same
// callbacks (ids and creation times legitimately do).
func summary(v handlers.VisitView) string {
	var parts []string
	for _, p := range v.Participants {
		parts = append(parts, fmt.Sprintf("%s/%s/%s/%v", p.SID, p.Identity, p.Role, p.Connected))
	}
	var tl []string
	for _, e := range v.Timeline {
		at := e.At.Format("15:04:05")
		if e.Source == "api" {
			at = "(created)" // the two visits were created at different wall-clock times
		}
		tl = append(tl, fmt.Sprintf("%s|%s|%s|%s|%s", at, e.Source, e.Type, e.Summary, e.State))
	}
	sort.Strings(tl)
	return fmt.Sprintf("state=%s\nparticipants=%v\ntimeline=%v", v.State, parts, tl)
}

// TestOrderIndependenceThroughHTTP delivers the same callbacks in order to
// one visit and shuffled, duplicated (also as Twilio retries with the same
// idempotency token) and concurrently from many goroutines to another, and
// requires the same state, participants and timeline.
func TestOrderIndependenceThroughHTTP(t *testing.T) {
	e := testenv.New(t)
	rng := rand.New(rand.NewSource(42))
	for round := 0; round < 12; round++ {
		calls := generateVisit(rng)
		inOrder, shuffled := fmt.Sprintf("R%d-in", round), fmt.Sprintf("R%d-sh", round)
		e.CreateVisit(testenv.VisitBody(inOrder))
		e.CreateVisit(testenv.VisitBody(shuffled))
		for _, c := range calls {
			deliver(e, inOrder, c)
		}

		type delivery struct {
			c     cb
			token string
		}
		var all []delivery
		for i, c := range calls {
			all = append(all, delivery{c, fmt.Sprintf("tok-%d", i)})
			if rng.Intn(2) == 0 { // a Twilio retry: same token
				all = append(all, delivery{c, fmt.Sprintf("tok-%d", i)})
			}
			if rng.Intn(3) == 0 { // a duplicate delivery with a new token
				all = append(all, delivery{c, fmt.Sprintf("dup-%d", i)})
			}
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		var wg sync.WaitGroup
		for _, d := range all {
			wg.Add(1)
			go func(d delivery) {
				defer wg.Done()
				path := "/twilio/video/status?visit=" + shuffled
				p := d.c.params("visit-" + shuffled)
				resp := e.PostSigned(path, p,
					"I-Twilio-Idempotency-Token", d.token)
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("concurrent delivery = %d; want 204", resp.StatusCode)
				}
			}(d)
		}
		wg.Wait()

		want, got := summary(e.Visit(inOrder)), summary(e.Visit(shuffled))
		if got != want {
			t.Fatalf("round %d: shuffled concurrent delivery gave\n%s\nin-order delivery gave\n%s", round, got, want)
		}
	}
}

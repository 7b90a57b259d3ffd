package store

import (
	"encoding/json"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/visitflow/visitflow/internal/visit"
)

// benchVisit is a visit as a callback finds it mid-visit: both people, a
// reconnect, reminders done.
func benchVisit() *visit.Visit {
	t := time.Date(2026, 12, 1, 15, 0, 0, 123456789, time.UTC)
	v := &visit.Visit{ID: "V-3F2A9C1B7D4E6F80", ScheduledAt: t, Timezone: "America/New_York",
		Provider: visit.Person{Identity: "dr-lee", Name: "Dr. Lee", Phone: "+15551230001"},
		Patient:  visit.Person{Identity: "pat-8812", Name: "Sam", Phone: "+15551230002"},
		Room:     visit.Room{Name: "visit-V-3F2A9C1B7D4E6F80", SID: "RM0123456789abcdef0123456789abcdef"},
		DialIn:   visit.DialIn{Number: "+15005550006", PIN: "482913771"}, CreatedAt: t, UpdatedAt: t, Transitions: 5,
		Done:        map[string]time.Time{"reminder:r24h0m0s:s0": t, "reminder:r1h0m0s:s0": t, "video:room-created": t},
		Extra:       map[string]string{"timers": "V-1:reminder:send:r24h0m0s:s0 V-1:reminder:send:r1h0m0s:s0"},
		RequestHash: "482a7ceecbf01bd344e52ca611dea73e20690a08ed5229598812a476f179aec7"}
	for i, who := range []string{"pat-8812", "dr-lee", "dr-lee"} {
		sid := "PA0123456789abcdef0123456789abcd0" + string(rune('0'+i))
		v.ParticipantConnected(sid, who, t.Add(time.Duration(i)*time.Minute))
		if i == 1 {
			v.ParticipantDisconnected(sid, who, t.Add(3*time.Minute), 2*time.Minute)
		}
	}
	return v
}

// TestStoreJSONIsEncodingJSON: the store's JSON (goccy/go-json) writes the
// bytes encoding/json writes and reads what it reads, so visits stored by
// either are the same and Update's "unchanged" check (re-encode, compare
// with what was read) holds.
func TestStoreJSONIsEncodingJSON(t *testing.T) {
	v := benchVisit()
	std, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 { // map order is random per run: every run must sort
		got, err := gojson.Marshal(v)
		if err != nil || string(got) != string(std) {
			t.Fatalf("goccy Marshal = %s, %v;\nencoding/json  %s", got, err, std)
		}
	}
	var back visit.Visit
	if err := gojson.Unmarshal(std, &back); err != nil {
		t.Fatal(err)
	}
	if again, _ := json.Marshal(&back); string(again) != string(std) {
		t.Fatalf("goccy read back and re-encoded = %s;\nwant %s", again, std)
	}
}

// BenchmarkEncodeVisit and BenchmarkDecodeVisit compare encoding/json with
// the store's goccy/go-json on a mid-visit record.
func BenchmarkEncodeVisit(b *testing.B) {
	v := benchVisit()
	b.Run("std", func(b *testing.B) {
		for range b.N {
			_, _ = json.Marshal(v)
		}
	})
	b.Run("goccy", func(b *testing.B) {
		for range b.N {
			_, _ = gojson.Marshal(v)
		}
	})
}

func BenchmarkDecodeVisit(b *testing.B) {
	v := benchVisit()
	raw, _ := json.Marshal(v)
	b.Run("std", func(b *testing.B) {
		for range b.N {
			var out visit.Visit
			_ = json.Unmarshal(raw, &out)
		}
	})
	b.Run("goccy", func(b *testing.B) {
		for range b.N {
			var out visit.Visit
			_ = gojson.Unmarshal(raw, &out)
		}
	})
}

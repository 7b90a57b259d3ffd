package visit

import (
	"testing"
	"time"
)

func apply(v *Visit, facts ...fact) *Visit {
	for _, f := range facts {
		f.apply(v)
	}
	return v
}

func TestWaitingDuringTellsAReconnectFromANewWait(t *testing.T) {
	cases := []struct {
		name     string
		facts    []fact
		from, to time.Time
		want     bool
	}{
		{"never waited", nil, at(0), at(10), false},
		{"waiting at the window's start", []fact{connect("PA1", "pat-1", 0)}, at(5), at(6), true},
		{"a wait that ended inside the window",
			[]fact{connect("PA1", "pat-1", 0), disconnect("PA1", "pat-1", 3)}, at(2), at(5), true},
		{"a wait that ended before the window",
			[]fact{connect("PA1", "pat-1", 0), disconnect("PA1", "pat-1", 3)}, at(4), at(9), false},
		{"a wait that began inside the window",
			[]fact{connect("PA1", "pat-1", 4), disconnect("PA1", "pat-1", 5)}, at(3), at(9), true},
		{"in the visit with the provider is not waiting",
			[]fact{connect("PA2", "dr-lee", 0), connect("PA1", "pat-1", 1), disconnect("PA1", "pat-1", 3)}, at(2), at(9), false},
		{"a guest alone is not the patient waiting", []fact{connect("PA3", "guest-1", 0)}, at(1), at(9), false},
		{"an empty window", []fact{connect("PA1", "pat-1", 0)}, at(5), at(5), false},
	}
	for _, c := range cases {
		v := apply(newVisit(), c.facts...)
		if got := v.WaitingDuring(c.from, c.to); got != c.want {
			t.Errorf("%s: WaitingDuring(%s, %s) = %v; want %v", c.name, c.from.Format("15:04"), c.to.Format("15:04"), got, c.want)
		}
	}
}

func TestWaitingSinceIsTheCurrentWait(t *testing.T) {
	v := apply(newVisit(), connect("PA1", "pat-1", 0), disconnect("PA1", "pat-1", 2), connect("PA2", "pat-1", 5))
	if since, ok := v.WaitingSince(); !ok || !since.Equal(at(5)) {
		t.Errorf("WaitingSince() = %v, %v; want the reconnect at %v", since, ok, at(5))
	}
	apply(v, connect("PA3", "dr-lee", 7))
	if _, ok := v.WaitingSince(); ok {
		t.Errorf("WaitingSince() with the provider in the room = ok; want not waiting")
	}
}

func TestByPhoneOnlyWhenThePhoneLegIsThePatientsOnlyConnection(t *testing.T) {
	v := apply(newVisit(), connect("PA1", "dialin-V-1", 0))
	if !v.ByPhone() {
		t.Errorf("ByPhone() with only the dial-in leg = false")
	}
	apply(v, connect("PA2", "pat-1", 1))
	if v.ByPhone() {
		t.Errorf("ByPhone() with the patient's video connection open too = true")
	}
	if newVisit().ByPhone() {
		t.Errorf("ByPhone() of an empty room = true")
	}
}

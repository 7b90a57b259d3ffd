package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// QuietHours is a daily local-time window, written "HH:MM-HH:MM". The window
// may wrap midnight ("21:00-08:00"); the end is exclusive. The zero value
// (Set false, written "") is no window at all.
type QuietHours struct {
	Start time.Duration // offset from local midnight
	End   time.Duration // offset from local midnight
	Set   bool
}

// Contains reports whether t, already in the local time zone that matters
// (the visit's), falls inside the window. It is false when no window is set.
func (q QuietHours) Contains(t time.Time) bool {
	if !q.Set {
		return false
	}
	h, m, s := t.Clock()
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second +
		time.Duration(t.Nanosecond())
	if q.Start < q.End {
		return q.Start <= d && d < q.End
	}
	return d >= q.Start || d < q.End
}

// String returns the window as "HH:MM-HH:MM", or "" when none is set.
func (q QuietHours) String() string {
	if !q.Set {
		return ""
	}
	return clock(q.Start) + "-" + clock(q.End)
}

func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// MarshalText returns String's text.
func (q QuietHours) MarshalText() ([]byte, error) { return []byte(q.String()), nil }

// UnmarshalText parses "HH:MM-HH:MM" (hours 00–23, minutes 00–59; start and
// end must differ); blank text means no window. It fails on anything else.
func (q *QuietHours) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if s == "" {
		*q = QuietHours{}
		return nil
	}
	from, to, ok := strings.Cut(s, "-")
	start, err1 := parseClock(from)
	end, err2 := parseClock(to)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("invalid quiet hours %q (want HH:MM-HH:MM, e.g. \"21:00-08:00\", or \"\" for none)", s)
	}
	if start == end {
		return fmt.Errorf("invalid quiet hours %q: start and end are equal", s)
	}
	*q = QuietHours{Start: start, End: end, Set: true}
	return nil
}

// UnmarshalYAML reads the window from a YAML string, for code that decodes
// YAML with yaml.v3 directly.
func (q *QuietHours) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	return q.UnmarshalText([]byte(s))
}

func parseClock(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("invalid clock time %q", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

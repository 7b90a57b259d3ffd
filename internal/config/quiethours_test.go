package config

import (
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestQuietHoursParse(t *testing.T) {
	tests := []struct {
		in      string
		want    QuietHours
		wantErr bool
	}{
		{"21:00-08:00", QuietHours{Start: 21 * time.Hour, End: 8 * time.Hour, Set: true}, false},
		{" 12:30 - 13:45 ", QuietHours{Start: 12*time.Hour + 30*time.Minute, End: 13*time.Hour + 45*time.Minute, Set: true}, false},
		{"00:00-23:59", QuietHours{End: 23*time.Hour + 59*time.Minute, Set: true}, false},
		{"", QuietHours{}, false},
		{"21:00", QuietHours{}, true},
		{"21:00-21:00", QuietHours{}, true},
		{"24:00-08:00", QuietHours{}, true},
		{"21:60-08:00", QuietHours{}, true},
		{"9:00-17:00", QuietHours{}, true},
		{"21:00-08:00-09:00", QuietHours{}, true},
		{"9pm-8am", QuietHours{}, true},
	}
	for _, tt := range tests {
		var got QuietHours
		err := got.UnmarshalText([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("UnmarshalText(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			var back QuietHours
			if err := back.UnmarshalText([]byte(got.String())); err != nil || back != got {
				t.Errorf("UnmarshalText(%q).String() = %q does not parse back: %+v, %v", tt.in, got.String(), back, err)
			}
		}
	}
}

func TestQuietHoursContains(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	at := func(h, m int) time.Time { return time.Date(2026, 12, 1, h, m, 0, 0, ny) }
	overnight := QuietHours{Start: 21 * time.Hour, End: 8 * time.Hour, Set: true}
	lunch := QuietHours{Start: 12 * time.Hour, End: 13 * time.Hour, Set: true}
	tests := []struct {
		q    QuietHours
		t    time.Time
		want bool
	}{
		{overnight, at(20, 59), false},
		{overnight, at(21, 0), true},
		{overnight, at(23, 59), true},
		{overnight, at(0, 0), true},
		{overnight, at(7, 59), true},
		{overnight, at(8, 0), false},
		{overnight, at(12, 0), false},
		{lunch, at(11, 59), false},
		{lunch, at(12, 0), true},
		{lunch, at(12, 59), true},
		{lunch, at(13, 0), false},
		{QuietHours{}, at(22, 0), false},
	}
	for _, tt := range tests {
		if got := tt.q.Contains(tt.t); got != tt.want {
			t.Errorf("%q.Contains(%s) = %v; want %v", tt.q, tt.t.Format("15:04"), got, tt.want)
		}
	}
}

func TestQuietHoursYAML(t *testing.T) {
	var v struct {
		Q QuietHours `yaml:"q"`
	}
	if err := yaml.Unmarshal([]byte(`q: "22:00-07:30"`), &v); err != nil || v.Q.String() != "22:00-07:30" {
		t.Errorf("yaml.Unmarshal quiet hours = %q, %v; want 22:00-07:30", v.Q, err)
	}
	if err := yaml.Unmarshal([]byte(`q: "late"`), &v); err == nil {
		t.Error("yaml.Unmarshal(q: late) succeeded; want an error")
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatalf("yaml.Marshal: %v", err)
	}
	want := v.Q
	v.Q = QuietHours{}
	if err := yaml.Unmarshal(out, &v); err != nil || v.Q != want {
		t.Errorf("yaml.Marshal gave %q, which reads back as %+v, %v; want %+v", out, v.Q, err, want)
	}
}

func FuzzQuietHours(f *testing.F) {
	for _, s := range []string{"21:00-08:00", "", "00:00-00:01", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var q QuietHours
		if q.UnmarshalText([]byte(s)) != nil {
			return
		}
		var back QuietHours
		if err := back.UnmarshalText([]byte(q.String())); err != nil || back != q {
			t.Errorf("UnmarshalText(%q) = %+v; String %q parses back to %+v, %v", s, q, q.String(), back, err)
		}
	})
}

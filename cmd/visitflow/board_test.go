package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBoardTodayIsBoardTimezone starts the server with board.timezone set
// to a zone 14 hours ahead of UTC and creates a visit that falls on that
// zone's today but not on UTC's: the board's day shows it.
func TestBoardTodayIsBoardTimezone(t *testing.T) {
	const zone = "Pacific/Kiritimati" // UTC+14, no daylight saving
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	now := time.Now()
	y, m, d := now.In(loc).Date()
	kStart := time.Date(y, m, d, 0, 0, 0, 0, loc)
	y, m, d = now.UTC().Date()
	uStart := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	// A time in the zone's day outside UTC's (the days overlap by 10 hours).
	at := kStart.Add((uStart.Sub(kStart)) / 2)
	if kStart.After(uStart) {
		at = uStart.Add(24*time.Hour + kStart.Sub(uStart)/2)
	}

	s := startSandboxServerWith(t, map[string]string{"VISITFLOW_BOARD_TIMEZONE": zone})
	body := map[string]any{
		"id": "V-kiribati", "scheduled_at": at.UTC().Format(time.RFC3339),
		"provider": map[string]string{"identity": "dr-lee", "phone": "+15551230001"},
		"patient":  map[string]string{"identity": "pat-8812", "phone": "+15551230002"},
	}
	if code := s.call(http.MethodPost, "/v1/visits", body, nil, true); code != http.StatusCreated {
		t.Fatalf("POST /v1/visits = %d; want 201", code)
	}
	req, _ := http.NewRequest(http.MethodGet, s.base+"/admin/visits", nil)
	req.SetBasicAuth(s.session.AdminUser, s.session.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(page), "V-kiribati") {
		t.Errorf("board (board.timezone %s, %s there) does not list a visit at %s, which is today there:\n%s",
			zone, now.In(loc).Format("2 Jan 15:04"), at.In(loc).Format("2 Jan 15:04"), page)
	}
	if want := at.In(loc).Format("15:04:05"); !strings.Contains(string(page), want) {
		t.Errorf("board does not show the visit's time in %s (%s)", zone, want)
	}
}

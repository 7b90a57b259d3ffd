package sandbox

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// The Voice and Messaging list resources, filtered and paged as Twilio does,
// newest first. visitflow reads them to settle a request whose answer it
// never got: did Twilio create the message, place the call?
//
// Twilio's date filters (DateSent for messages, StartTime for calls) leave
// out what has not been sent or started yet: a queued message has no
// date_sent, a queued call no start_time. The emulator keeps that, so a
// caller filtering by them misses what is still queued, as it would on Twilio.

// REST: GET /2010-04-01/Accounts/{AccountSid}/Messages.json
func (e *Emulator) handleListMessageResource(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	e.mu.Lock()
	var items []messageJSON
	for _, m := range slices.Backward(e.messages) {
		if !matches(q, "To", m.to) || !matches(q, "From", m.from) ||
			!inRange(q, "DateSent", m.sent) {
			continue
		}
		items = append(items, e.messageJSON(m))
	}
	e.mu.Unlock()
	writeListPage(w, req, "messages", items)
}

// REST: GET /2010-04-01/Accounts/{AccountSid}/Calls.json
func (e *Emulator) handleListCallResource(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	e.mu.Lock()
	var items []callJSON
	for _, c := range slices.Backward(e.calls) {
		if !matches(q, "To", c.to) || !matches(q, "From", c.from) || !matches(q, "Status", c.status) ||
			!inRange(q, "StartTime", c.start) || !inRange(q, "EndTime", c.end) {
			continue
		}
		items = append(items, e.callJSON(c))
	}
	e.mu.Unlock()
	writeListPage(w, req, "calls", items)
}

func matches(q url.Values, name, value string) bool {
	want := q.Get(name)
	return want == "" || want == value
}

// inRange applies Twilio's date filters: name (that day), name< and name>
// (before / after, inclusive of the day as Twilio documents "<=" and ">=").
// Dates are YYYY-MM-DD or RFC 3339. A zero t (not sent, not started) never
// passes a filter.
func inRange(q url.Values, name string, t time.Time) bool {
	on, before, after := q.Get(name), q.Get(name+"<"), q.Get(name+">")
	if on == "" && before == "" && after == "" {
		return true
	}
	if t.IsZero() {
		return false
	}
	t = t.UTC()
	if d, day, ok := parseFilterDate(on); ok {
		if day && !sameDay(t, d) || !day && !t.Equal(d) {
			return false
		}
	}
	if d, day, ok := parseFilterDate(before); ok {
		if day && t.After(d.Add(24*time.Hour)) || !day && t.After(d) {
			return false
		}
	}
	if d, _, ok := parseFilterDate(after); ok && t.Before(d) {
		return false
	}
	return true
}

func parseFilterDate(s string) (t time.Time, day, ok bool) {
	if s == "" {
		return time.Time{}, false, false
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, true, true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), false, true
	}
	return time.Time{}, false, false
}

func sameDay(a, b time.Time) bool {
	ay, am, ad := a.Date()
	by, bm, bd := b.Date()
	return ay == by && am == bm && ad == bd
}

// writeListPage answers one page of a 2010-04-01 list resource: PageSize
// (default 50, at most 1000) and Page (from 0), with next_page_uri when more
// remain, which twilio-go follows.
func writeListPage[T any](w http.ResponseWriter, req *http.Request, key string, items []T) {
	q := req.URL.Query()
	size, _ := strconv.Atoi(q.Get("PageSize"))
	if size <= 0 || size > 1000 {
		size = 50
	}
	page, _ := strconv.Atoi(q.Get("Page"))
	page = max(page, 0)
	start := min(page*size, len(items))
	end := min(start+size, len(items))
	uri := func(p int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("PageSize", strconv.Itoa(size))
		v.Set("Page", strconv.Itoa(p))
		return req.URL.Path + "?" + v.Encode()
	}
	var next any
	if end < len(items) {
		next = uri(page + 1)
	}
	list := items[start:end]
	if list == nil {
		list = []T{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		key: list, "page": page, "page_size": size, "start": start, "end": max(end-1, 0),
		"uri": uri(page), "first_page_uri": uri(0), "next_page_uri": next, "previous_page_uri": nil,
	})
}

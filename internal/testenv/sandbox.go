package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/visitflow/visitflow/internal/sandbox"
)

// Sandbox is an emulator served over HTTP, with the typed client of its
// control and inspection API.
type Sandbox struct {
	Emulator *sandbox.Emulator
	URL      string // its base URL: where twilio.api_url points
	Client   *sandbox.Client
}

// ServeSandbox serves emu on an httptest server under mount ("" for the
// root, "/sandbox" as the app mounts it) until t ends. The emulator is
// closed first.
func ServeSandbox(t testing.TB, emu *sandbox.Emulator, mount string) *Sandbox {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(mount+"/", emu.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		emu.Close()
		srv.Close()
	})
	return &Sandbox{Emulator: emu, URL: srv.URL + mount, Client: sandbox.NewClient(srv.URL+mount, srv.Client())}
}

// WaitEvent awaits the first emulator event (past or future) that matches,
// for at most WaitLimit.
func (s *Sandbox) WaitEvent(t testing.TB, what string, match func(sandbox.Event) bool) sandbox.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitLimit)
	defer cancel()
	ev, err := s.Emulator.WaitFor(ctx, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return ev
}

// CountEvents counts the recorded events of resource sid with kind and name.
func (s *Sandbox) CountEvents(sid, kind, name string) int {
	n := 0
	for _, ev := range s.Emulator.Events() {
		if ev.SID == sid && ev.Kind == kind && ev.Name == name {
			n++
		}
	}
	return n
}

// SMS lists the SMS sent through the REST API (not inbound ones, not
// <Message> replies), oldest first.
func (s *Sandbox) SMS(t testing.TB) []sandbox.MessageView {
	t.Helper()
	all, err := s.Client.Messages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return filter(all, func(m sandbox.MessageView) bool { return m.Direction == "outbound-api" })
}

// SMSTo is SMS to one number.
func (s *Sandbox) SMSTo(t testing.TB, phone string) []sandbox.MessageView {
	t.Helper()
	return filter(s.SMS(t), func(m sandbox.MessageView) bool { return m.To == phone })
}

// CallsTo lists the calls placed through the REST API to number, oldest first.
func (s *Sandbox) CallsTo(t testing.TB, number string) []sandbox.CallView {
	t.Helper()
	all, err := s.Client.Calls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return filter(all, func(c sandbox.CallView) bool { return c.To == number && c.Direction == "outbound-api" })
}

// filter returns the elements of xs for which keep is true, in order.
func filter[T any](xs []T, keep func(T) bool) []T {
	var out []T
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// RoomsNamed lists the emulator's rooms named name, oldest first.
func (s *Sandbox) RoomsNamed(t testing.TB, name string) []sandbox.RoomView {
	t.Helper()
	rooms, err := s.Client.RoomsNamed(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return rooms
}

// Join connects identity to the in-progress room from a browser.
func (s *Sandbox) Join(t testing.TB, room, identity string) sandbox.ParticipantView {
	t.Helper()
	p, err := s.Client.Join(context.Background(), room, identity)
	if err != nil {
		t.Fatalf("joining the sandbox room %s as %s: %v", room, identity, err)
	}
	return p
}

// ParticipantConnected matches the participant-connected callback of identity.
func ParticipantConnected(identity string) func(sandbox.Event) bool {
	return func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "participant-connected" &&
			ev.Params.Get("ParticipantIdentity") == identity
	}
}

// CallCompleted matches the completed status callback of call sid.
func CallCompleted(sid string) func(sandbox.Event) bool {
	return func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceStatus && ev.SID == sid && ev.Name == "completed"
	}
}

// RoomEnded matches the room-ended callback of the room named name.
func RoomEnded(name string) func(sandbox.Event) bool {
	return func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVideoStatus && ev.Name == "room-ended" && ev.Params.Get("RoomName") == name
	}
}

// Verb matches TwiML verb name executed on call sid.
func Verb(sid, name string) func(sandbox.Event) bool {
	return func(ev sandbox.Event) bool {
		return ev.Kind == sandbox.KindVoiceVerb && ev.Name == name && ev.SID == sid
	}
}

// The Sandbox helpers for the env's emulator (WithSandbox), failing e.T.

// WaitEvent is Sandbox.WaitEvent.
func (e *Env) WaitEvent(what string, match func(sandbox.Event) bool) sandbox.Event {
	e.T.Helper()
	return e.Sandbox.WaitEvent(e.T, what, match)
}

// SMS is Sandbox.SMS.
func (e *Env) SMS() []sandbox.MessageView {
	e.T.Helper()
	return e.Sandbox.SMS(e.T)
}

// SMSTo is Sandbox.SMSTo.
func (e *Env) SMSTo(phone string) []sandbox.MessageView {
	e.T.Helper()
	return e.Sandbox.SMSTo(e.T, phone)
}

// CallsTo is Sandbox.CallsTo.
func (e *Env) CallsTo(number string) []sandbox.CallView {
	e.T.Helper()
	return e.Sandbox.CallsTo(e.T, number)
}

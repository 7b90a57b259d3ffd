package workflows_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/visitflow/visitflow/internal/testenv"
)

func TestTokensAreRoomScopedAndExpireWithTheVisit(t *testing.T) {
	e := newLegEnv(t)
	at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	createAt(e, "V-tok", at)
	for _, c := range []struct{ role, identity string }{{"patient", "pat-8812"}, {"provider", "dr-lee"}} {
		var g grant
		if code := e.API(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": c.role}, &g); code != http.StatusOK {
			t.Fatalf("POST tokens %s = %d; want 200", c.role, code)
		}
		identity, room, exp, claims := decodeToken(t, g.Token)
		if identity != c.identity || room != "visit-V-tok" || g.Identity != c.identity || g.Room != "visit-V-tok" {
			t.Fatalf("%s token: identity %q room %q (answer %+v); want %s in visit-V-tok", c.role, identity, room, g, c.identity)
		}
		if want := at.Add(2 * time.Hour); !exp.Equal(want) || !g.ExpiresAt.Equal(want) {
			t.Fatalf("%s token exp = %v (expires_at %v); want scheduled_at + access_window = %v", c.role, exp, g.ExpiresAt, want)
		}
		if claims["iss"] != testenv.APIKey || claims["sub"] != e.Config.Twilio.AccountSID {
			t.Fatalf("token iss/sub = %v/%v; want %s/%s", claims["iss"], claims["sub"], testenv.APIKey, e.Config.Twilio.AccountSID)
		}
	}
	// The room exists before the token is returned, and the visit knows it.
	rooms, err := e.Sandbox.Client.Rooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 1 || rooms[0].UniqueName != "visit-V-tok" || rooms[0].Status != "in-progress" {
		t.Fatalf("sandbox rooms = %+v; want visit-V-tok in progress (created once)", rooms)
	}
	if v := e.Visit("V-tok"); v.Room.SID != rooms[0].SID {
		t.Fatalf("visit room sid = %q; want %s", v.Room.SID, rooms[0].SID)
	}

	var errBody testenv.ErrorBody
	if code := e.API(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": "guest"}, &errBody); code != http.StatusBadRequest || errBody.Error.Field != "role" {
		t.Fatalf("POST tokens role=guest = %d %+v; want 400 naming role", code, errBody)
	}
	if code := e.API(http.MethodPost, "/v1/visits/V-nope/tokens", map[string]string{"role": "patient"}, nil); code != http.StatusNotFound {
		t.Fatalf("POST tokens for an unknown visit = %d; want 404", code)
	}
	e.API(http.MethodPost, "/v1/visits/V-tok/cancel", nil, nil)
	if code := e.API(http.MethodPost, "/v1/visits/V-tok/tokens", map[string]string{"role": "patient"}, &errBody); code != http.StatusUnprocessableEntity {
		t.Fatalf("POST tokens for a cancelled visit = %d; want 422", code)
	}
}

package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest/observer"

	"github.com/visitflow/visitflow/internal/visit"
	"github.com/visitflow/visitflow/workflows"
)

// PHIPanickingStore panics whenever it reads a visit, with the patient's
// name and phone in the panic's value, as a bug near patient data might:
// for the tests that hold what is written about a panic free of PHI.
type PHIPanickingStore struct{ workflows.Store }

// PanicName is the patient name in PHIPanickingStore's panics.
const PanicName = "Sam"

func (PHIPanickingStore) Get(context.Context, string) (*visit.Visit, error) {
	panic(fmt.Sprintf("cannot read the visit of %s (%s)", PanicName, PatientPhone))
}

func (s PHIPanickingStore) GetWithTimeline(ctx context.Context, id string) (*visit.Visit, []visit.Entry, error) {
	v, err := s.Get(ctx, id)
	return v, nil, err
}

// ShowsPanicPHI reports whether s carries the name or phone of
// PHIPanickingStore's panics.
func ShowsPanicPHI(s string) bool {
	return strings.Contains(s, PanicName) || strings.Contains(s, PatientPhone)
}

// PanicLogged returns the entry logged with message, failing t when there
// is none or when any entry shows PHIPanickingStore's name or phone.
func PanicLogged(t testing.TB, logs *observer.ObservedLogs, message string) observer.LoggedEntry {
	t.Helper()
	var found *observer.LoggedEntry
	for _, entry := range logs.All() {
		if line := entry.Message + " " + fmt.Sprint(entry.ContextMap()); ShowsPanicPHI(line) {
			t.Errorf("log line carries the panic's PHI: %s", line)
		}
		if entry.Message == message && found == nil {
			found = &entry
		}
	}
	if found == nil {
		t.Fatalf("no %q in the log", message)
	}
	return *found
}

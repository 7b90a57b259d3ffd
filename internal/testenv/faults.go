package testenv

import (
	"context"
	"fmt"
	"strings"

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

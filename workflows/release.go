package workflows

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// releasePIN gives back the PIN of a create that did not store its visit.
// It runs even when the request's context is done (the client went away
// half-way), and a failure only costs a PIN until its reservation expires.
func (e *Engine) releasePIN(pin, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.store.ReleasePIN(ctx, pin, id); err != nil {
		e.log.Warn("create: could not release the dial-in PIN of a visit not created", zap.String("visit", id), zap.Error(err))
	}
}

package finchreauth

// InFlight reports the work t runs in the background: handlings, webhook
// notifications, OnReconnected. Tests wait for it to be 0 before they look
// at what that work did.
func InFlight(t *Transport) int64 { return t.inFlight.Load() }

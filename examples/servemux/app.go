package main

import (
	"net/http"

	"github.com/finchkit/finchreauth/examples/internal/tenants"
)

// routes mounts the app on a net/http ServeMux. A ServeMux puts the path's
// values in the request (r.PathValue), so the tenant's start and status
// endpoints are the Transport's StartHandler and StatusHandler, given a
// function that reads {tenant} and asks who is signed in.
func routes(a *tenants.App) http.Handler {
	// authorize names the connection the request's user may reconnect and
	// see: their tenant's, when the path names a tenant they belong to.
	// An error answers 403 (and reaches the ErrorHandler).
	authorize := func(r *http.Request) (string, error) {
		return a.Member(r, r.PathValue("tenant"))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.Login)
	mux.HandleFunc("GET /tenants/{tenant}/settings", func(w http.ResponseWriter, r *http.Request) {
		a.Settings(w, r, r.PathValue("tenant"))
	})
	// Each tenant's own Finch endpoints, under /tenants/{tenant}/finch/.
	mux.Handle("POST /tenants/{tenant}/finch/reconnect", a.Transport.StartHandler(authorize))
	mux.Handle("GET /tenants/{tenant}/finch/status", a.Transport.StatusHandler(authorize))

	// One callback and one webhook endpoint for every tenant, at fixed
	// paths: Finch knows one redirect URI and one webhook URL.
	mux.Handle("/finch/callback", a.Transport.CallbackHandler()) // GET: redirect flow; POST: embedded flow
	mux.Handle("POST /finch/webhooks", a.Transport.WebhookHandler(a.WebhookSecret))
	mux.HandleFunc("GET /finch/done", a.Done) // Connect.SuccessURL
	return mux
}

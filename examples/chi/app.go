package main

import (
	"net/http"

	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"github.com/go-chi/chi/v5"
)

// routes mounts the app on a chi router. chi keeps its URL parameters in
// the request's context (chi.URLParam), so the tenant's start and status
// endpoints are the Transport's StartHandler and StatusHandler, given a
// function that reads {tenant} and asks who is signed in.
func routes(a *tenants.App) http.Handler {
	// authorize names the connection the request's user may reconnect and
	// see: their tenant's, when the path names a tenant they belong to.
	// An error answers 403 (and reaches the ErrorHandler).
	authorize := func(r *http.Request) (string, error) {
		return a.Member(r, chi.URLParam(r, "tenant"))
	}

	r := chi.NewRouter()
	r.Get("/login", a.Login)
	r.Route("/tenants/{tenant}", func(r chi.Router) {
		r.Get("/settings", func(w http.ResponseWriter, r *http.Request) {
			a.Settings(w, r, chi.URLParam(r, "tenant"))
		})
		// The tenant's own Finch endpoints, under /tenants/{tenant}/finch/.
		r.Route("/finch", func(r chi.Router) {
			r.Method(http.MethodPost, "/reconnect", a.Transport.StartHandler(authorize))
			r.Method(http.MethodGet, "/status", a.Transport.StatusHandler(authorize))
		})
	})

	// One callback and one webhook endpoint for every tenant, at fixed
	// paths: Finch knows one redirect URI and one webhook URL.
	r.Handle("/finch/callback", a.Transport.CallbackHandler()) // GET: redirect flow; POST: embedded flow
	r.Method(http.MethodPost, "/finch/webhooks", a.Transport.WebhookHandler(a.WebhookSecret))
	r.Get("/finch/done", a.Done) // Connect.SuccessURL
	return r
}

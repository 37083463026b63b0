package main

import (
	"net/http"

	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"github.com/gorilla/mux"
)

// routes mounts the app on a gorilla/mux router. gorilla/mux keeps its path
// variables in the request's context (mux.Vars), so the tenant's start and
// status endpoints are the Transport's StartHandler and StatusHandler, given
// a function that reads {tenant} and asks who is signed in.
func routes(a *tenants.App) http.Handler {
	// authorize names the connection the request's user may reconnect and
	// see: their tenant's, when the path names a tenant they belong to.
	// An error answers 403 (and reaches the ErrorHandler).
	authorize := func(r *http.Request) (string, error) {
		return a.Member(r, mux.Vars(r)["tenant"])
	}

	r := mux.NewRouter()
	r.HandleFunc("/login", a.Login).Methods(http.MethodGet)
	t := r.PathPrefix("/tenants/{tenant}").Subrouter()
	t.HandleFunc("/settings", func(w http.ResponseWriter, r *http.Request) {
		a.Settings(w, r, mux.Vars(r)["tenant"])
	}).Methods(http.MethodGet)
	// The tenant's own Finch endpoints, under /tenants/{tenant}/finch/.
	t.Handle("/finch/reconnect", a.Transport.StartHandler(authorize)).Methods(http.MethodPost)
	t.Handle("/finch/status", a.Transport.StatusHandler(authorize)).Methods(http.MethodGet)

	// One callback and one webhook endpoint for every tenant, at fixed
	// paths: Finch knows one redirect URI and one webhook URL.
	r.Handle("/finch/callback", a.Transport.CallbackHandler()).Methods(http.MethodGet, http.MethodPost) // GET: redirect flow; POST: embedded flow
	r.Handle("/finch/webhooks", a.Transport.WebhookHandler(a.WebhookSecret)).Methods(http.MethodPost)
	r.HandleFunc("/finch/done", a.Done).Methods(http.MethodGet) // Connect.SuccessURL
	return r
}

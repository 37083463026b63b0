package main

import (
	"net/http"

	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"github.com/labstack/echo/v4"
)

// routes mounts the app on an echo instance. echo keeps path parameters in
// its own Context (c.Param), not in the *http.Request: the tenant's start
// and status endpoints resolve {tenant} to the connection its signed-in
// member may reconnect and see, and hand it to the Transport's
// ServeReconnect and ServeStatus, which answer as its StartHandler and
// StatusHandler do.
func routes(a *tenants.App) http.Handler {
	e := echo.New()
	e.GET("/login", echo.WrapHandler(http.HandlerFunc(a.Login)))
	t := e.Group("/tenants/:tenant")
	t.GET("/settings", func(c echo.Context) error {
		a.Settings(c.Response(), c.Request(), c.Param("tenant"))
		return nil
	})
	// The tenant's own Finch endpoints, under /tenants/:tenant/finch/.
	t.POST("/finch/reconnect", member(a, a.Transport.ServeReconnect))
	t.GET("/finch/status", member(a, a.Transport.ServeStatus))

	// One callback and one webhook endpoint for every tenant, at fixed
	// paths: Finch knows one redirect URI and one webhook URL.
	// echo.WrapHandler mounts an http.Handler.
	e.Match([]string{http.MethodGet, http.MethodPost}, "/finch/callback", echo.WrapHandler(a.Transport.CallbackHandler())) // GET: redirect flow; POST: embedded flow
	e.POST("/finch/webhooks", echo.WrapHandler(a.Transport.WebhookHandler(a.WebhookSecret)))
	e.GET("/finch/done", echo.WrapHandler(http.HandlerFunc(a.Done))) // Connect.SuccessURL
	return e
}

// member serves a tenant's Finch endpoint to the tenant's members, for the
// tenant's connection; anyone else gets 403.
func member(a *tenants.App, serve func(http.ResponseWriter, *http.Request, string)) echo.HandlerFunc {
	return func(c echo.Context) error {
		conn, err := a.Member(c.Request(), c.Param("tenant"))
		if err != nil {
			return echo.NewHTTPError(http.StatusForbidden)
		}
		serve(c.Response(), c.Request(), conn)
		return nil
	}
}

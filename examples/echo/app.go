package main

import (
	"net/http"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"github.com/labstack/echo/v4"
)

// routes mounts the app on an echo instance. echo keeps path parameters in
// its own Context (c.Param), not in the *http.Request, so the tenant's start
// and status endpoints are echo handlers that read {tenant}, ask who is
// signed in, and call the Transport: ReconnectURL and Status.
func routes(a *tenants.App) http.Handler {
	e := echo.New()
	e.GET("/login", echo.WrapHandler(http.HandlerFunc(a.Login)))
	t := e.Group("/tenants/:tenant")
	t.GET("/settings", func(c echo.Context) error {
		a.Settings(c.Response(), c.Request(), c.Param("tenant"))
		return nil
	})
	// The tenant's own Finch endpoints, under /tenants/:tenant/finch/.
	t.POST("/finch/reconnect", reconnect(a))
	t.GET("/finch/status", status(a))

	// One callback and one webhook endpoint for every tenant, at fixed
	// paths: Finch knows one redirect URI and one webhook URL.
	// echo.WrapHandler mounts an http.Handler.
	e.Match([]string{http.MethodGet, http.MethodPost}, "/finch/callback", echo.WrapHandler(a.Transport.CallbackHandler())) // GET: redirect flow; POST: embedded flow
	e.POST("/finch/webhooks", echo.WrapHandler(a.Transport.WebhookHandler(a.WebhookSecret)))
	e.GET("/finch/done", echo.WrapHandler(http.HandlerFunc(a.Done))) // Connect.SuccessURL
	return e
}

// reconnect is the start endpoint, behind the settings page's Reconnect
// button: a member of the tenant in the path is sent to Finch Connect for
// the tenant's connection; anyone else gets 403.
func reconnect(a *tenants.App) echo.HandlerFunc {
	return func(c echo.Context) error {
		tenant := c.Param("tenant")
		conn, err := a.Member(c.Request(), tenant)
		if err != nil {
			return echo.NewHTTPError(http.StatusForbidden)
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		// The link the customer was sent, while it is good; or a new one.
		link, err := a.Transport.ReconnectURL(c.Request().Context(), conn)
		if err != nil {
			return c.Redirect(http.StatusSeeOther, "/tenants/"+tenant+"/settings?reason="+string(finchreauth.ReasonLinkFailed))
		}
		return c.Redirect(http.StatusSeeOther, link)
	}
}

// status answers the connection's Status as JSON, for the dashboard, to the
// tenant's members.
func status(a *tenants.App) echo.HandlerFunc {
	return func(c echo.Context) error {
		conn, err := a.Member(c.Request(), c.Param("tenant"))
		if err != nil {
			return echo.NewHTTPError(http.StatusForbidden)
		}
		st, err := a.Transport.Status(c.Request().Context(), conn)
		if err != nil {
			return echo.NewHTTPError(http.StatusServiceUnavailable)
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, st)
	}
}

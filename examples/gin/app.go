package main

import (
	"net/http"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"github.com/gin-gonic/gin"
)

// routes mounts the app on a gin engine. gin keeps path parameters in its
// own Context (c.Param), not in the *http.Request, so the tenant's start and
// status endpoints are gin handlers that read {tenant}, ask who is signed
// in, and call the Transport: ReconnectURL and Status.
func routes(a *tenants.App) http.Handler {
	r := gin.New()
	r.GET("/login", gin.WrapF(a.Login))
	t := r.Group("/tenants/:tenant")
	t.GET("/settings", func(c *gin.Context) { a.Settings(c.Writer, c.Request, c.Param("tenant")) })
	// The tenant's own Finch endpoints, under /tenants/:tenant/finch/.
	t.POST("/finch/reconnect", reconnect(a))
	t.GET("/finch/status", status(a))

	// One callback and one webhook endpoint for every tenant, at fixed
	// paths: Finch knows one redirect URI and one webhook URL. gin.WrapH
	// mounts an http.Handler.
	r.Match([]string{http.MethodGet, http.MethodPost}, "/finch/callback", gin.WrapH(a.Transport.CallbackHandler())) // GET: redirect flow; POST: embedded flow
	r.POST("/finch/webhooks", gin.WrapH(a.Transport.WebhookHandler(a.WebhookSecret)))
	r.GET("/finch/done", gin.WrapF(a.Done)) // Connect.SuccessURL
	return r
}

// reconnect is the start endpoint, behind the settings page's Reconnect
// button: a member of the tenant in the path is sent to Finch Connect for
// the tenant's connection; anyone else gets 403.
func reconnect(a *tenants.App) gin.HandlerFunc {
	return func(c *gin.Context) {
		tenant := c.Param("tenant")
		conn, err := a.Member(c.Request, tenant)
		if err != nil {
			c.AbortWithStatus(http.StatusForbidden)
			return
		}
		c.Header("Cache-Control", "no-store")
		// The link the customer was sent, while it is good; or a new one.
		link, err := a.Transport.ReconnectURL(c.Request.Context(), conn)
		if err != nil {
			c.Redirect(http.StatusSeeOther, "/tenants/"+tenant+"/settings?reason="+string(finchreauth.ReasonLinkFailed))
			return
		}
		c.Redirect(http.StatusSeeOther, link)
	}
}

// status answers the connection's Status as JSON, for the dashboard, to the
// tenant's members.
func status(a *tenants.App) gin.HandlerFunc {
	return func(c *gin.Context) {
		conn, err := a.Member(c.Request, c.Param("tenant"))
		if err != nil {
			c.AbortWithStatus(http.StatusForbidden)
			return
		}
		st, err := a.Transport.Status(c.Request.Context(), conn)
		if err != nil {
			c.AbortWithStatus(http.StatusServiceUnavailable)
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, st)
	}
}

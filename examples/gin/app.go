package main

import (
	"net/http"

	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"github.com/gin-gonic/gin"
)

// routes mounts the app on a gin engine. gin keeps path parameters in its
// own Context (c.Param), not in the *http.Request: the tenant's start and
// status endpoints resolve {tenant} to the connection its signed-in member
// may reconnect and see, and hand it to the Transport's ServeReconnect and
// ServeStatus, which answer as its StartHandler and StatusHandler do.
func routes(a *tenants.App) http.Handler {
	r := gin.New()
	r.GET("/login", gin.WrapF(a.Login))
	t := r.Group("/tenants/:tenant")
	t.GET("/settings", func(c *gin.Context) { a.Settings(c.Writer, c.Request, c.Param("tenant")) })
	// The tenant's own Finch endpoints, under /tenants/:tenant/finch/.
	t.POST("/finch/reconnect", member(a, a.Transport.ServeReconnect))
	t.GET("/finch/status", member(a, a.Transport.ServeStatus))

	// One callback and one webhook endpoint for every tenant, at fixed
	// paths: Finch knows one redirect URI and one webhook URL. gin.WrapH
	// mounts an http.Handler.
	r.Match([]string{http.MethodGet, http.MethodPost}, "/finch/callback", gin.WrapH(a.Transport.CallbackHandler())) // GET: redirect flow; POST: embedded flow
	r.POST("/finch/webhooks", gin.WrapH(a.Transport.WebhookHandler(a.WebhookSecret)))
	r.GET("/finch/done", gin.WrapF(a.Done)) // Connect.SuccessURL
	return r
}

// member serves a tenant's Finch endpoint to the tenant's members, for the
// tenant's connection; anyone else gets 403.
func member(a *tenants.App, serve func(http.ResponseWriter, *http.Request, string)) gin.HandlerFunc {
	return func(c *gin.Context) {
		conn, err := a.Member(c.Request, c.Param("tenant"))
		if err != nil {
			c.AbortWithStatus(http.StatusForbidden)
			return
		}
		serve(c.Writer, c.Request, conn)
	}
}

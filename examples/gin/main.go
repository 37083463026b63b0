// Command gin mounts finchreauth's handlers on a gin engine, in a
// multi-tenant app behind a sign-in: each tenant's start and status
// endpoints under /tenants/:tenant/finch/ (gin handlers that read the
// tenant with c.Param and call the Transport's ServeReconnect and
// ServeStatus),
// and one callback and one webhook endpoint for every tenant, at
// /finch/callback and /finch/webhooks.
//
//	cd examples/gin && go run .
//
// It lives in a module of its own so that the root module does not depend
// on gin. It starts a fake Finch (package finchtest) and the app on
// loopback ports, with two tenants, acme (alice) and globex (bob). Acme's
// connection breaks and Finch says so by webhook: the app notifies once. A
// visitor with no session, bob, and alice at a tenant that does not exist
// are refused at every route under /tenants/; alice reconnects from acme's
// settings page, through Finch Connect and the callback, and acme's data is
// back. The scenario is shared by every router example
// (examples/internal/tenants); app.go is what is about gin. It checks every
// step and exits with status 1 if one failed.
package main

import (
	"github.com/finchkit/finchreauth/examples/internal/scenario"
	"github.com/finchkit/finchreauth/examples/internal/tenants"
	"github.com/gin-gonic/gin"
)

func main() {
	gin.SetMode(gin.ReleaseMode) // no [GIN-debug] lines in the narration
	scenario.Main("gin", run)
}

// run plays the router examples' scenario with this app's routes.
var run = tenants.Script(routes)

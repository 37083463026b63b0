// Package finchtest provides a fake Finch, the employment-data API, for
// tests: the API (api.tryfinch.com) and Finch Connect
// (connect.tryfinch.com) on one local httptest server, with no network
// and no accounts. It speaks Finch's formats: Finch-shaped JSON errors,
// the Finch-Request-Id header, /introspect, the token exchange and the
// Connect redirects.
//
// A test registers a connection, gets a token, and points the code under
// test at the server's URL:
//
//	s := finchtest.NewServer()
//	defer s.Close()
//	token := s.AddConnection(finchtest.Connection{ProviderID: "gusto"})
//	// Call s.URL+"/employer/directory" with "Authorization: Bearer "+token,
//	// through s.Client() or a transport built on s.Client().Transport.
//
// Breaking the connection makes its tokens answer 401 with
// finch_code reauthenticate_user, as Finch does when an employer must
// re-authenticate; /introspect keeps answering 200, with status "reauth":
//
//	c, _ := s.ConnectionForToken(token)
//	s.Break(c.ID)
//
// The employer then goes through Connect again. Approve stands in for the
// browser and returns the redirect_uri callback with a code; exchanging
// the code at POST /auth/token re-connects: it issues a new token, and
// every older token of the connection is superseded: refused by data calls
// (401 reauthenticate_user) forever. Its /introspect reports the
// connection's statuses, as a live token's does, unless
// SetSupersededIntrospection asks for the older reading ("reauth"). The
// connection, customer, company and data ids do not change:
//
//	link := s.URL + "/authorize?client_id=" + s.ClientID +
//		"&redirect_uri=https://app.example.com/cb&products=company+directory" +
//		"&connection_id=" + c.ID
//	callback, err := s.Approve(link) // https://app.example.com/cb?code=...
//
// SetNextReconnect makes the next reconnect of a connection differ from
// the last: grant only some of the products asked for (the exchange's and
// /introspect's products say which), change the username of whoever
// authenticated, gain or lose entities.
//
// A Connect session link (POST /connect/sessions/reauthenticate, body
// {connection_id, minutes_to_expire, products, redirect_uri, state})
// completes the same way. Which state Connect echoes for a session is
// unconfirmed, so SetSessionStateSource selects it: the session body's
// state (StateFromSessionBody, the default), the one the application put
// on the connect_url (StateFromConnectURL), or none (StateOmitted). The
// classic link always echoes its query's state. Approve, ApproveAs, Cancel
// and the Connect page's form follow the same rule. Since state is not in
// the session API's reference, SetRefuseUnlistedSessionFields makes the fake
// refuse it (400), as a Finch that validates strictly would.
//
// Statuses live at three levels, as in Finch: the connection's
// (SetStatus), each entity's (SetEntityStatus) and each authentication
// method's (SetMethodStatus); /introspect reports all three. Data endpoints
// answer by the connection's status alone.
//
// Multi-entity connections list entities[] in /introspect, each with its
// own status. BreakEntity breaks one entity only: the connection stays
// connected, and its data endpoints keep answering 200, while any entity
// works; it breaks too when the last working entity does. SetEntityStatus
// heals one; a reconnect heals them all.
//
// A connection has one authentication method ("credential") unless
// Connection.Methods lists several, each with its products. A method's
// status is reported, not enforced: the connection's status governs data
// calls. An assisted connection (Connection.Assisted, or a method of type
// "assisted") reports manual: true; SetStatus puts it in
// "error_no_account_setup" or "error_permissions" like any other status.
//
// Webhooks: SetWebhook registers the application's endpoint and secrets.
// Every status change then sends a signed account.updated event to it
// (Finch-Event-Id, Finch-Timestamp, Finch-Signature), over HTTP, before the
// call or request that made the change returns; Webhooks lists the
// deliveries with the answers. SendWebhook sends any event, Redeliver
// sends one again with the same id, Webhook's fields send the older
// "error_reauth" status, a plain-string authentication_method or several
// signatures (a secret rotation), and SignWebhook signs a test's own
// deliveries. Close cancels deliveries under way.
//
// Finch's deliveries come late, twice and out of order. HoldWebhooks holds
// the events instead of sending them; HeldWebhooks lists them, DeliverHeld
// sends any of them, in any order and any number of times (signed anew,
// with its event id, stamped with the time of delivery or, as
// TimestampOfEvent asks, of the event), and DropHeld forgets one. A status
// change needs no API call and never waits for its webhook: with webhooks
// held or unregistered nothing is sent, and /introspect tells the truth.
//
// Data syncs: POST /jobs/automated {"type":"data_sync_all"} enqueues a
// job (one per connection at a time: a second call answers 202 with the
// running job; one forced refresh per hour: then 429 with retry_at), and
// GET /jobs/automated/{job_id} reads it. Jobs wait for SetJobStatus, or
// advance by the server's clock after SetJobDuration; when one ends, a
// job.data_sync_all.completed webhook is sent, and a "complete" job moves
// last_successful_sync. A job ends in reauth_error if its connection is in
// reauth, in permissions_error if in error_permissions; PUT
// /sandbox/jobs/configuration or SetJobStatus can end one in reauth_error
// and put the connection in reauth with it, as Finch's sandbox does. Jobs
// lists them.
//
// POST /disconnect ends a connection for good: every token of it is
// revoked (401 invalid_token_error, or 500 server_error as
// SetRevokedAnswer selects), its status becomes "disconnected" for good
// (Connection(id).Status), and account.updated says so.
//
// Faults make the server misbehave on purpose (statuses, malformed
// bodies, headers such as Retry-After, latency), and Calls counts the
// requests each route received. SetRateLimit limits an endpoint as Finch
// does, per application over a rolling 60-second window of the server's
// clock: beyond it, 429 rate_limit_exceeded_error with finch_code
// finch_application_rl, and Retry-After if SetRateLimitRetryAfter asks
// (no Finch source documents the header); RateLimited counts the 429s.
//
// Routes served:
//
//	GET  /introspect
//	GET  /employer/company
//	GET  /employer/directory             ?limit= &offset=
//	PUT  /sandbox/connections/accounts   {"connection_status": "reauth"}
//	POST /auth/token                     {client_id, client_secret, code, redirect_uri}
//	POST /connect/sessions/reauthenticate (HTTP Basic client_id:client_secret)
//	                                     {connection_id, minutes_to_expire, products, redirect_uri, state}
//	GET  /authorize                      ?session=  or the classic query
//	POST /authorize/decision             (the Connect page's form)
//	POST /disconnect
//	POST /jobs/automated                 {"type": "data_sync_all"}
//	GET  /jobs/automated                 ?limit= &offset=
//	GET  /jobs/automated/{job_id}
//	GET  /sandbox/jobs/configuration
//	PUT  /sandbox/jobs/configuration     {"type": "data_sync_all", "completion_status": "reauth_error"}
//
// Access tokens, codes, client secrets and webhook secrets never appear in
// the fake's error messages.
package finchtest

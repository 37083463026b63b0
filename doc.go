// Package finchreauth handles Finch's re-authentication errors for Go
// programs that call the Finch HR and payroll API.
//
// When an employer changes its payroll login, or its provider changes
// something, Finch answers every call made with that employer's access token
// with HTTP 401 and finch_code "reauthenticate_user". From then on the
// application must notice it, tell the customer (and remind them), show it on
// its dashboard, give them a link that reopens Finch Connect, exchange the
// code Connect sends back for a new token, save it, and carry on. A Transport
// does all of that.
//
// # Noticing
//
// A Transport wraps the http.RoundTripper that carries the calls to Finch:
//
//	tr := &finchreauth.Transport{Store: store, Notifier: notifier, Connect: connect}
//	client := tr.WrapClient(existingClient) // or &http.Client{Transport: tr}
//
// or, with the official Finch Go SDK, option.WithHTTPClient(client) or
// option.WithMiddleware(tr.Middleware). Every response other than Finch's
// reauthenticate_user passes through untouched. On that answer, the caller
// gets Finch's 401 as it came, at once; once per broken token, however many
// calls see it, the Transport finds the token's connection (in the Store,
// or from GET /introspect), opens the connection's episode in the Store
// and, holding the Store's lease on its notification, calls the Notifier
// with an Event: the connection, the customer, the products that stop
// working, what the employer must do and a reconnect link. Finch's
// account.updated webhook (WebhookHandler) is a signal of the same episode,
// so the customer hears once, whichever comes first, in whatever order
// Finch sends them (see Transport, "A connection's life"). Remind (or Run)
// sends the reminders and carries out whatever else the Store's records
// owe.
//
// # Reconnecting
//
// Connect holds the application's side of Finch Connect. The links it makes
// carry a signed, expiring state; CallbackHandler takes the employer back,
// claims the state in the Store (so that it completes one reconnect across
// every replica), exchanges the code, checks the connection, saves the token
// (retrying, and never replacing a token Finch still accepts with one it
// refuses) and ends the episode. ReconnectURL gives the dashboard its
// reconnect button, Status and StatusHandler what it shows.
//
// # Stores
//
// A Store keeps a record per connection; the Transport does the rest with
// loads and compare-and-sets. MemoryStore serves one process; the store
// modules of this repository (SQL, Redis) serve every replica that shares
// them. Package storetest checks any Store.
//
// # Testing
//
// Package finchtest is a fake Finch on net/http/httptest: connections,
// tokens, the re-authentication state, Finch Connect, signed webhooks, fault
// injection and call counters, for testing the code that uses this package
// without network or accounts.
package finchreauth

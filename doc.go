// Package finchreauth handles Finch's re-authentication errors for Go
// programs that call the Finch HR and payroll API.
//
// When an employer changes its payroll login, or its provider changes
// something, Finch answers every call made with that employer's access token
// with HTTP 401 and finch_code "reauthenticate_user". From then on the
// application must notice it, tell the customer once, give them a link that
// reopens Finch Connect, exchange the code Connect sends back for a new token,
// save it, and carry on. This package does the noticing and the telling.
//
// # The Transport
//
// A Transport wraps the http.RoundTripper that carries your calls to Finch:
//
//	tr := &finchreauth.Transport{
//		Store:    finchreauth.NewMemoryStore(),
//		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
//			return mailer.SendReconnect(ctx, e.Connection.CustomerEmail, e.Connection.Products, e.ReconnectURL)
//		}),
//	}
//	client := tr.WrapClient(existingClient) // or &http.Client{Transport: tr}
//
// With the official Finch Go SDK, hand it the wrapped client:
//
//	finch.NewClient(option.WithAccessToken(token), option.WithHTTPClient(client))
//
// Every response other than a 401 passes through untouched. On a
// re-authentication answer, the caller gets Finch's 401 as it came (its body
// reads the same bytes) and, once per broken token however many calls see it
// at once, the Transport asks GET /introspect who the token belongs to,
// records the episode in its Store and, if the Store says this is news,
// calls the Notifier with an Event that carries the connection, the customer,
// the products that stop working and a reconnect link. For a while after
// (LatchTTL), calls with that token are answered with the same kind of 401
// without reaching Finch.
//
// # Reconnecting
//
// Connect is the other half: set it as the Transport's Links and every
// Event carries a link that reopens Finch Connect on the connection (a
// Connect session, or the authorize URL of the seed flow), bound to it by a
// signed, expiring, single-use state. Mount Connect.CallbackHandler at the
// link's redirect URI, under any router: it verifies the state, exchanges
// the code Connect sends back, checks that the token is for the connection
// the link named, saves it through the Transport (which ends the episode
// and clears the latch) and sends the employer to the application's success
// or failure page. Connect.StartHandler launches Connect from the
// application's own dashboard.
//
// # Recognising the error yourself
//
// IsReauth recognises a re-authentication in an error (an *APIError, or the
// official SDK's error); IsReauthResponse in a response; ParseAPIError parses
// any Finch error answer.
//
// # Stores
//
// A Store makes "one notification per broken connection" hold: MemoryStore
// within one process; the stores in this repository's store modules across
// every process that shares them. Package storetest checks any Store.
//
// # Testing
//
// Package finchtest is a fake Finch on net/http/httptest: connections,
// tokens, the re-authentication state, fault injection and call counters, for
// testing the code that uses this package without network or accounts.
package finchreauth

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
// every older token of the connection stays dead. The connection, customer,
// company and data ids do not change:
//
//	link := s.URL + "/authorize?client_id=" + s.ClientID +
//		"&redirect_uri=https://app.example.com/cb&products=company+directory" +
//		"&connection_id=" + c.ID
//	callback, err := s.Approve(link) // https://app.example.com/cb?code=...
//
// Faults make the server misbehave on purpose (statuses, malformed
// bodies, headers such as Retry-After, latency), and Calls counts the
// requests each route received.
//
// Routes served:
//
//	GET  /introspect
//	GET  /employer/company
//	GET  /employer/directory             ?limit= &offset=
//	PUT  /sandbox/connections/accounts   {"connection_status": "reauth"}
//	POST /auth/token                     {client_id, client_secret, code, redirect_uri}
//	POST /connect/sessions/reauthenticate (HTTP Basic client_id:client_secret)
//	GET  /authorize                      ?session=  or the classic query
//	POST /authorize/decision             (the Connect page's form)
//
// Access tokens, codes and client secrets never appear in the fake's
// error messages.
package finchtest

package finchreauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/finchtest"
)

// A Transport in front of a fake Finch: the connection breaks, the first call
// brings Finch's 401 and one notification, the next is answered locally.
func ExampleTransport() {
	finch := finchtest.NewServer()
	defer finch.Close()
	token := finch.AddConnection(finchtest.Connection{CustomerName: "Acme Corp", ProviderID: "gusto"})

	tr := &finchreauth.Transport{
		Base: finch.Client().Transport,
		Notifier: finchreauth.NotifierFunc(func(ctx context.Context, e finchreauth.Event) error {
			fmt.Printf("notify %s (%s on %s): reconnect to restore %s\n",
				e.Connection.CustomerName, e.Connection.ConnectionID, e.Connection.ProviderID,
				strings.Join(e.Connection.Products, ", "))
			return nil
		}),
	}
	defer tr.Close()
	client := &http.Client{Transport: tr}

	call := func() {
		req, _ := http.NewRequest("GET", finch.URL+"/employer/company", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Printf("%d %s reauth=%v (%s)\n", resp.StatusCode, resp.Header.Get("Finchreauth"),
			strings.Contains(string(body), "reauthenticate_user"), http.StatusText(resp.StatusCode))
	}

	call()
	conn, _ := finch.ConnectionForToken(token)
	finch.Break(conn.ID)
	call()
	call()
	fmt.Println("calls that reached Finch:", finch.Calls("GET", "/employer/company"))
	// Output:
	// 200  reauth=false (OK)
	// notify Acme Corp (c0000000-0000-4000-8000-000000000001 on gusto): reconnect to restore company, directory, individual, employment, payment, pay_statement
	// 401 detected reauth=true (Unauthorized)
	// 401 latched reauth=true (Unauthorized)
	// calls that reached Finch: 2
}

// WrapClient builds a new client around one the application already has;
// the original keeps working as before.
func ExampleTransport_WrapClient() {
	existing := &http.Client{Timeout: 30e9}
	tr := &finchreauth.Transport{}
	defer tr.Close()
	client := tr.WrapClient(existing)
	fmt.Println(client != existing, client.Timeout, existing.Transport == nil)
	// Output: true 30s true
}

// IsReauth recognises Finch's re-authentication error however it arrives:
// here as an *APIError wrapped by the application's own code.
func ExampleIsReauth() {
	resp := &http.Response{
		StatusCode: 401,
		Header:     http.Header{"Finch-Request-Id": {"req_123"}},
		Body:       io.NopCloser(strings.NewReader(`{"code":401,"name":"authentication_error","finch_code":"reauthenticate_user","message":"Please reauthenticate user"}`)),
	}
	err := fmt.Errorf("sync directory: %w", finchreauth.ParseAPIError(resp))
	fmt.Println(finchreauth.IsReauth(err))
	fmt.Println(errors.Is(err, finchreauth.ErrReauthRequired))
	fmt.Println(err)
	// Output:
	// true
	// true
	// sync directory: finchreauth: finch API error 401 authentication_error (reauthenticate_user): Please reauthenticate user [request req_123]
}

// ParseAPIError reads a Finch error and leaves the body readable.
func ExampleParseAPIError() {
	resp := &http.Response{
		StatusCode: 429,
		Header:     http.Header{"Retry-After": {"2"}},
		Body:       io.NopCloser(strings.NewReader(`{"code":429,"name":"rate_limit_exceeded_error","finch_code":"finch_api_ip_rl","message":"Rate limit exceeded"}`)),
	}
	e := finchreauth.ParseAPIError(resp)
	fmt.Println(e.Name, e.FinchCode, e.IsReauth())
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(len(body) > 0)
	// Output:
	// rate_limit_exceeded_error finch_api_ip_rl false
	// true
}

// A fingerprint names a token in logs and tickets without revealing it.
func ExampleFingerprint() {
	fmt.Println(finchreauth.Fingerprint("example-access-token"))
	tok := finchreauth.Token{ConnectionID: "conn_1", AccessToken: "example-access-token"}
	fmt.Printf("%v\n", tok)
	// Output:
	// 6753f72e5f9ed09a
	// finchreauth.Token{ConnectionID:"conn_1" Fingerprint:6753f72e5f9ed09a IssuedAt:0001-01-01T00:00:00Z}
}

// Package unittest shows how to unit-test application code that calls Finch
// through a finchreauth.Transport.
//
// syncer.go is the application code: a Syncer that copies a customer's
// employee directory from Finch. syncer_test.go tests it three ways: with a
// fake RoundTripper as the Transport's Base (no network at all), against
// the fake Finch of package finchtest, and by checking what the Transport
// told the application's Notifier: after failed syncs, after Finch's
// webhook, and a day later (a reminder).
package unittest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/finchkit/finchreauth"
)

// Customer is one of the application's customers, with the access token of
// their Finch connection.
type Customer struct {
	ID          string
	AccessToken string
}

// Employee is what the application keeps of Finch's directory.
type Employee struct {
	ID        string `json:"id"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
}

// Syncer copies customers' employee directories from Finch.
type Syncer struct {
	// Client sends the calls to Finch: an *http.Client whose transport is
	// a finchreauth.Transport.
	Client *http.Client
	// BaseURL is Finch's API, such as "https://api.tryfinch.com".
	BaseURL string
	// PageSize is how many employees to ask for per call. If zero, 100.
	PageSize int
	// NeedsAttention is called when a customer must reconnect their
	// payroll account. If nil, nothing is called.
	NeedsAttention func(ctx context.Context, customerID string)
}

// Directory returns a customer's employees, read page by page. If Finch
// says the employer must re-authenticate, it flags the customer and stops:
// every further call would fail the same way until they reconnect. The
// error then satisfies finchreauth.IsReauth.
func (s *Syncer) Directory(ctx context.Context, c Customer) ([]Employee, error) {
	size := s.PageSize
	if size <= 0 {
		size = 100
	}
	var all []Employee
	for {
		page, total, err := s.page(ctx, c, len(all), size)
		if finchreauth.IsReauth(err) && s.NeedsAttention != nil {
			s.NeedsAttention(ctx, c.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("directory of customer %s: %w", c.ID, err)
		}
		all = append(all, page...)
		if len(page) == 0 || len(all) >= total {
			return all, nil
		}
	}
}

// page reads one page of the directory and the total number of employees.
func (s *Syncer) page(ctx context.Context, c Customer, offset, limit int) ([]Employee, int, error) {
	q := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.BaseURL+"/employer/directory?"+q.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	req.Header.Set("Finch-API-Version", "2020-09-17")
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// An *APIError for a 4xx or 5xx: finchreauth.IsReauth recognises
		// Finch's reauthenticate_user in it, wrapped or not. (Check for
		// nil: ParseAPIError returns a nil *APIError below 400, such as
		// Finch's 202 for a connection whose data is not ready yet.)
		if apiErr := finchreauth.ParseAPIError(resp); apiErr != nil {
			return nil, 0, apiErr
		}
		return nil, 0, fmt.Errorf("finch answered %s", resp.Status)
	}
	var body struct {
		Paging struct {
			Count int `json:"count"`
		} `json:"paging"`
		Individuals []Employee `json:"individuals"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, 0, err
	}
	return body.Individuals, body.Paging.Count, nil
}

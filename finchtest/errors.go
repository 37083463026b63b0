package finchtest

import (
	"encoding/json"
	"net/http"
)

// apiError is the body Finch sends with an error. Field order follows
// Finch's own bodies; finch_code is present only where Finch sends one.
type apiError struct {
	Code       int    `json:"code"`
	Name       string `json:"name"`
	FinchCode  string `json:"finch_code,omitempty"`
	Message    string `json:"message"`
	StatusCode int    `json:"statusCode"`
	Status     int    `json:"status"`
}

func newAPIError(status int, name, finchCode, message string) *apiError {
	return &apiError{
		Code:       status,
		Name:       name,
		FinchCode:  finchCode,
		Message:    message,
		StatusCode: status,
		Status:     status,
	}
}

// ErrorBody returns a Finch-shaped JSON error body: code, name, finch_code
// (omitted when finchCode is empty), message, and the redundant integer
// statusCode and status that many real Finch bodies carry. It is meant for
// Fault.Body, e.g. a one-off re-authentication on a single route:
//
//	s.InjectFault(finchtest.Fault{
//		Path:   "/employer/directory",
//		Status: 401,
//		Body:   finchtest.ErrorBody(401, "authentication_error", "reauthenticate_user", "Please reauthenticate user"),
//		Times:  1,
//	})
func ErrorBody(status int, name, finchCode, message string) string {
	b, _ := json.Marshal(newAPIError(status, name, finchCode, message))
	return string(b)
}

// defaultError is the body a Fault with an empty Body answers with.
func defaultError(status int) *apiError {
	name, finchCode := "", ""
	switch status {
	case http.StatusBadRequest:
		name = "invalid_request_error"
	case http.StatusUnauthorized:
		name = "authentication_error"
	case http.StatusForbidden:
		name = "forbidden_error"
	case http.StatusNotFound:
		name = "not_found_error"
	case http.StatusMethodNotAllowed:
		name = "method_not_allowed_error"
	case http.StatusRequestTimeout:
		name = "request_timeout_error"
	case http.StatusConflict:
		name = "conflict_error"
	case http.StatusUnprocessableEntity:
		name = "unprocessable_request_error"
	case http.StatusTooManyRequests:
		name, finchCode = "rate_limit_exceeded_error", "finch_application_rl"
	case http.StatusNotImplemented:
		name = "not_implemented_error"
	case http.StatusBadGateway:
		name = "bad_gateway_error"
	case http.StatusServiceUnavailable:
		name = "service_unavailable_error"
	case http.StatusGatewayTimeout:
		name = "gateway_timeout_error"
	default:
		if status >= 500 {
			name = "server_error"
		} else {
			name = "client_error"
		}
	}
	msg := http.StatusText(status)
	if msg == "" {
		msg = "Error"
	}
	return newAPIError(status, name, finchCode, msg)
}

// The errors the fake answers with. Messages never contain a token, a
// code or a client secret.
func errUnauthorized() *apiError {
	return newAPIError(401, "unauthorized_request_error", "", "Unauthorized request: no authentication given")
}

func errInvalidToken() *apiError {
	return newAPIError(401, "invalid_token_error", "", "Invalid access token")
}

func errReauthenticate() *apiError {
	return newAPIError(401, "authentication_error", "reauthenticate_user", "Please reauthenticate user")
}

func errAccountSetup() *apiError {
	return newAPIError(401, "authentication_error", "account_setup_required", "The employer has not finished setting up this connection")
}

func errInvalidClient() *apiError {
	return newAPIError(401, "invalid_client_error", "", "Invalid client credentials")
}

func errInvalidGrant(message string) *apiError {
	return newAPIError(400, "invalid_grant_error", "", message)
}

func errInvalidRequest(message string) *apiError {
	return newAPIError(400, "invalid_request_error", "", message)
}

func errNotFound(message string) *apiError {
	return newAPIError(404, "not_found_error", "", message)
}

const contentTypeJSON = "application/json; charset=utf-8"

// writeJSON writes v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value passed here is a plain struct or map; this cannot
		// happen, but answer like Finch would rather than panic.
		status, b = http.StatusInternalServerError, []byte(ErrorBody(500, "server_error", "", "finchtest: cannot encode response"))
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	w.Write(b)
}

// writeError writes e as a JSON error response.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Code, e)
}

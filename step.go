package finchreauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/finchkit/finchreauth/internal/finchapi"
	"github.com/finchkit/finchreauth/internal/hook"
)

// subject names what a step concerns, for its HookError.
type subject struct{ conn, fp string }

// step runs one step of the Transport's work (a Store call, a hook, a call
// to Finch) under Timeout in its own goroutine, and reports a failure to the
// ErrorHandler as a *HookError, which it also returns.
func step[T any](t *Transport, ctx context.Context, name string, s subject, fn func(context.Context) (T, error)) (T, error) {
	v, err := hook.Run(ctx, t.timeout(), fn)
	if err == nil {
		return v, nil
	}
	he := &HookError{Hook: name, ConnectionID: s.conn, TokenFingerprint: s.fp, Err: err}
	if p, ok := err.(hook.Panic); ok {
		he.Panic, he.Err = p.Value, errPanicked
	}
	t.report(ctx, he)
	return v, he
}

// quiet marks errors that are an answer, not a failure: step does not
// report them.
func quiet(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict)
}

// storeStep is step for a Store call whose ErrNotFound and ErrConflict are
// answers: those are returned as they are, unreported.
func storeStep[T any](t *Transport, ctx context.Context, s subject, fn func(context.Context, Store) (T, error)) (T, error) {
	v, err := hook.Run(ctx, t.timeout(), func(ctx context.Context) (T, error) { return fn(ctx, t.store) })
	if err == nil || quiet(err) {
		return v, err
	}
	return step(t, ctx, "store", s, func(context.Context) (T, error) { return v, err })
}

// report sends err to the ErrorHandler (under its own Timeout, whatever
// ctx's state: Close may be what failed the work) and the Logger.
func (t *Transport) report(ctx context.Context, err error) {
	t.log(ctx, slog.LevelWarn, "finchreauth: failure", "error", sanitize(err.Error()))
	if t.ErrorHandler == nil {
		return
	}
	if herr := hook.Do(context.WithoutCancel(ctx), t.timeout(), func(ctx context.Context) error {
		t.ErrorHandler(ctx, err)
		return nil
	}); herr != nil {
		t.log(ctx, slog.LevelError, "finchreauth: ErrorHandler failed", "error", herr.Error())
	}
}

func (t *Transport) log(ctx context.Context, level slog.Level, msg string, args ...any) {
	if t.Logger != nil {
		t.Logger.Log(ctx, level, msg, args...)
	}
}

func (t *Transport) count(ctx context.Context, name, outcome string) {
	if t.Metrics != nil {
		t.Metrics.Count(ctx, name, outcome, 1)
	}
}

// finch returns the client for the library's own calls to Finch through
// base, sharing the Transport's bound on calls in flight.
func (t *Transport) finch(ctx context.Context, base http.RoundTripper) finchapi.Client {
	c := finchapi.Client{Base: base, Limit: t.limit, Unlisted: &t.unlisted}
	if t.api != nil {
		c.BaseURL = t.api.String()
	}
	if t.Metrics != nil {
		c.Observe = func(_, outcome string) { t.Metrics.Count(ctx, "finchreauth.finch_calls", outcome, 1) }
	}
	return c
}

// introspect asks Finch whom token belongs to.
func (t *Transport) introspect(ctx context.Context, base http.RoundTripper, token string, s subject) (Connection, error) {
	return step(t, ctx, "introspect", s, func(ctx context.Context) (Connection, error) {
		if t.apiErr != nil {
			return Connection{}, t.apiErr
		}
		in, err := t.finch(ctx, base).Introspect(ctx, token)
		if err != nil {
			return Connection{}, apiErrorOf(err)
		}
		if in.ConnectionID == "" {
			return Connection{}, errors.New("finchreauth: /introspect answered without a connection_id")
		}
		return connectionOf(in), nil
	})
}

// apiErrorOf turns an answer of Finch that is not a success into an
// *APIError, wrapped with the path that was called.
func apiErrorOf(err error) error {
	var he *finchapi.HTTPError
	if !errors.As(err, &he) {
		return err
	}
	e := &APIError{StatusCode: he.StatusCode, RequestID: he.Header.Get("Finch-Request-Id"), Body: he.Body}
	e.parseBody(he.Body)
	return e
}

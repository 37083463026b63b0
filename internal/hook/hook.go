// Package hook runs the application's hooks (a Store, a Notifier, a link
// builder, an error handler, a call to Finch) so that none can hold the
// library past a timeout or crash the process.
package hook

import (
	"context"
	"fmt"
	"time"
)

// Panic is the error Run returns for a hook that panicked.
type Panic struct{ Value any }

func (p Panic) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// Run calls fn with a context bounded by timeout, in its own goroutine, and
// returns fn's result; Panic if fn panicked; or the context's error if fn
// outlived it. A hook that ignores its context is abandoned: it writes only
// to its own buffered channel when it returns.
func Run[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: Panic{r}}
			}
		}()
		v, err := fn(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Do is Run for a hook that returns only an error.
func Do(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	_, err := Run(ctx, timeout, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

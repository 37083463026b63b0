package finchreauth

import (
	"context"
	"log/slog"

	"github.com/finchkit/finchreauth/internal/hook"
)

// maxLoggedError bounds an error's message in a log line: whole, cause
// included (the library's errors are far shorter), but never a megabyte a
// Store put in its error.
const maxLoggedError = 4096

// report sends err to the ErrorHandler (under its own Timeout, whatever
// ctx's state: Close may be what failed the work) and the Logger.
func (t *Transport) report(ctx context.Context, err error) {
	t.log(ctx, slog.LevelWarn, "finchreauth: failure", "error", terminalSafe(err.Error(), maxLoggedError))
	if t.ErrorHandler == nil {
		return
	}
	if herr := hook.Do(context.WithoutCancel(ctx), t.timeout(), func(ctx context.Context) error {
		t.ErrorHandler(ctx, err)
		return nil
	}); herr != nil {
		t.log(ctx, slog.LevelError, "finchreauth: ErrorHandler failed", "error", terminalSafe(herr.Error(), maxLoggedError))
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

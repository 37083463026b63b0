package hook

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		fn   func(context.Context) (int, error)
		want error
	}{
		{"result", func(context.Context) (int, error) { return 7, nil }, nil},
		{"error", func(context.Context) (int, error) { return 0, boom }, boom},
		{"panic", func(context.Context) (int, error) { panic("oops") }, Panic{"oops"}},
		{"honours its context", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }, context.DeadlineExceeded},
		{"ignores its context", func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil }, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Run(context.Background(), 20*time.Millisecond, tc.fn)
			if !errors.Is(err, tc.want) && err != tc.want {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && v != 7 {
				t.Fatalf("v = %d", v)
			}
		})
	}
}

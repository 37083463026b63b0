package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/storetest"
)

// spoilable is a MemoryStore whose records spoil makes unreadable, as a
// token sealed under a dropped key is: Get fails, and List returns them in
// their place with Err set. bug names a way to get that wrong, "" for none.
type spoilable struct {
	*finchreauth.MemoryStore
	bug string

	mu  sync.Mutex
	bad map[string]bool
}

func newSpoilable(bug string) *spoilable {
	return &spoilable{MemoryStore: new(finchreauth.MemoryStore), bug: bug, bad: map[string]bool{}}
}

func (s *spoilable) spoil(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bad[id] = true
	return nil
}

func (s *spoilable) isBad(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad[id]
}

var errSpoiled = errors.New("the token is sealed under key 9, which the Sealer does not hold")

func (s *spoilable) Get(ctx context.Context, id string) (finchreauth.Record, error) {
	if s.isBad(id) {
		return finchreauth.Record{}, fmt.Errorf("spoilable: %q: %w", id, errSpoiled)
	}
	return s.MemoryStore.Get(ctx, id)
}

func (s *spoilable) List(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	recs, err := s.MemoryStore.List(ctx, q)
	var out []finchreauth.Record
	for _, r := range recs {
		if !s.isBad(r.ConnectionID) {
			out = append(out, r)
			continue
		}
		bad := finchreauth.Record{ConnectionID: r.ConnectionID, Err: fmt.Errorf("spoilable: %q: %w", r.ConnectionID, errSpoiled)}
		switch {
		case q.Every && q.DueBy.IsZero(): // ordered by id: no time
		case q.DueBy.IsZero():
			bad.Since = r.Since
		default:
			bad.Due = r.Due
		}
		switch s.bug {
		case "List fails the page":
			return nil, bad.Err
		case "List drops the record":
			continue
		case "List's Err holds the token":
			bad.Err = fmt.Errorf("spoilable: %q: token %s: %w", r.ConnectionID, string(r.Token), errSpoiled)
		case "List returns the record whole":
			r.Err, bad = bad.Err, r
		case "List sets both times":
			bad.Since, bad.Due = r.Since, r.Due
		case "List drops the record from the listing of every record":
			if q.Every {
				continue
			}
		case "List gives a time in the listing of every record":
			if q.Every {
				bad.Since = r.Since
			}
		}
		out = append(out, bad)
	}
	return out, err
}

func TestUnreadablePasses(t *testing.T) {
	s := newSpoilable("")
	storetest.Unreadable(t, s, s.spoil)
}

// unreadableMutants are the ways to get unreadable records wrong that
// Unreadable must catch.
var unreadableMutants = []string{
	"List fails the page",
	"List drops the record",
	"List's Err holds the token",
	"List returns the record whole",
	"List sets both times",
	"List drops the record from the listing of every record",
	"List gives a time in the listing of every record",
}

const unreadableEnv = "STORETEST_UNREADABLE_MUTANT"

// TestUnreadableMutant runs Unreadable on a broken store;
// TestUnreadableCatchesMutants runs it in a child process for each.
func TestUnreadableMutant(t *testing.T) {
	bug := os.Getenv(unreadableEnv)
	if bug == "" {
		t.Skip("run by TestUnreadableCatchesMutants")
	}
	s := newSpoilable(bug)
	storetest.Unreadable(t, s, s.spoil)
}

func TestUnreadableCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per mutant")
	}
	for _, bug := range unreadableMutants {
		t.Run(bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestUnreadableMutant$", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), unreadableEnv+"="+bug)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || !strings.Contains(string(out), "--- FAIL: TestUnreadableMutant") {
				t.Fatalf("Unreadable passed a store where %s (err %v):\n%s", bug, err, out)
			}
			for _, bad := range []string{"panic:", "DATA RACE", "test timed out"} {
				if strings.Contains(string(out), bad) {
					t.Fatalf("Unreadable crashed rather than failing on a store where %s:\n%s", bug, out)
				}
			}
			if testing.Verbose() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

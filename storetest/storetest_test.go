package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// refStore is a second, map-based Store written from the interface's
// documentation alone. mutation, when set, names a contract violation it
// commits on purpose, to show that the suite catches it.
type refStore struct {
	mutation string

	mu     sync.Mutex
	states map[string]finchreauth.State
	tokens map[string]finchreauth.Token
}

func newRefStore(mutation string) *refStore {
	return &refStore{mutation: mutation, states: map[string]finchreauth.State{}, tokens: map[string]finchreauth.Token{}}
}

func (s *refStore) ctxErr(ctx context.Context) error {
	if s.mutation == "ignores cancelled context" {
		return nil
	}
	return ctx.Err()
}

// precision is how finely the store keeps times.
func (s *refStore) precision(t time.Time) time.Time {
	if s.mutation == "keeps milliseconds" {
		return t.Truncate(time.Millisecond)
	}
	return t
}

func (s *refStore) MarkReauth(ctx context.Context, m finchreauth.Mark) (finchreauth.MarkResult, error) {
	if err := s.ctxErr(ctx); err != nil {
		return finchreauth.MarkResult{}, err
	}
	s.mu.Lock()
	st, known := s.states[m.Key]
	if s.mutation == "check then act" {
		// Decides on a snapshot, as a store reading and then writing
		// without a transaction does.
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if s.mutation != "never stale" && slices.Contains(st.Superseded, m.TokenFingerprint) {
		if s.mutation == "stale call takes lease" && st.NeedsReauth && !st.LeaseUntil.After(m.At) {
			st.LeaseUntil = m.LeaseUntil
			s.states[m.Key] = st
		}
		return finchreauth.MarkResult{Stale: true}, nil
	}
	var res finchreauth.MarkResult
	if !known {
		st = finchreauth.State{Key: m.Key, ConnectionID: m.ConnectionID}
	}
	if st.TokenFingerprint == "" && s.mutation != "forgets the broken token" {
		st.TokenFingerprint = m.TokenFingerprint
	}
	grant := !st.Notified && !st.LeaseUntil.After(m.At)
	switch s.mutation {
	case "lease ends after its end":
		grant = !st.Notified && st.LeaseUntil.Before(m.At)
	case "notifies notified episodes":
		grant = !st.LeaseUntil.After(m.At)
	case "never renews":
		grant = false
	}
	switch {
	case !st.NeedsReauth || s.mutation == "every mark transitions":
		st.NeedsReauth, st.Episode, st.Since, st.Notified = true, m.Episode, s.precision(m.At), false
		st.LeaseUntil = s.precision(m.LeaseUntil)
		res.Transitioned, res.Notify = true, true
	case grant:
		if s.mutation != "renewal keeps old lease" {
			st.LeaseUntil = s.precision(m.LeaseUntil)
		}
		res.Notify = true
	}
	if s.mutation == "joining mark renames episode" {
		st.Episode = m.Episode
	}
	s.states[m.Key] = st
	res.Episode, res.Since, res.Notified = st.Episode, st.Since, st.Notified
	return res, nil
}

func (s *refStore) MarkNotified(ctx context.Context, key, episode string) error {
	if err := s.ctxErr(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[key]
	if s.mutation == "notifies any episode" {
		episode = st.Episode
	}
	if s.mutation == "notify creates state" && !ok {
		s.states[key] = finchreauth.State{Key: key, ConnectionID: key}
		return nil
	}
	if !ok || !st.NeedsReauth || st.Episode != episode {
		return nil
	}
	st.Notified, st.LeaseUntil = true, time.Time{}
	s.states[key] = st
	return nil
}

func (s *refStore) SaveToken(ctx context.Context, tok finchreauth.Token) (finchreauth.State, error) {
	if err := s.ctxErr(ctx); err != nil {
		return finchreauth.State{}, err
	}
	if tok.ConnectionID == "" || tok.AccessToken == "" {
		if s.mutation == "error shows the token" {
			return finchreauth.State{}, fmt.Errorf("storetest: bad token %q", tok.AccessToken)
		}
		return finchreauth.State{}, errors.New("storetest: token needs a connection id and an access token")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.states[tok.ConnectionID]
	old, hasToken := s.tokens[tok.ConnectionID]
	stale := hasToken && old.IssuedAt.After(tok.IssuedAt)
	switch s.mutation {
	case "no CAS":
		stale = false
	case "refuses equal IssuedAt":
		stale = hasToken && !old.IssuedAt.Before(tok.IssuedAt)
	}
	if stale {
		if s.mutation == "error shows the token" {
			return finchreauth.State{}, fmt.Errorf("%w: %s", finchreauth.ErrStaleToken, tok.AccessToken)
		}
		if s.mutation == "refusal ends episode" {
			prev.NeedsReauth = false
			s.states[tok.ConnectionID] = prev
		}
		return finchreauth.State{}, finchreauth.ErrStaleToken
	}
	next := finchreauth.State{
		Key: tok.ConnectionID, ConnectionID: tok.ConnectionID,
		TokenFingerprint: tok.Fingerprint(), TokenIssuedAt: s.precision(tok.IssuedAt),
	}
	if s.mutation == "keeps episode" {
		next.NeedsReauth, next.Episode, next.Since, next.Notified, next.LeaseUntil = prev.NeedsReauth, prev.Episode, prev.Since, prev.Notified, prev.LeaseUntil
	}
	if s.mutation == "clears notified only" {
		next.NeedsReauth, next.Episode, next.Since, next.LeaseUntil = prev.NeedsReauth, prev.Episode, prev.Since, prev.LeaseUntil
	}
	next.Superseded = s.supersede(prev.Superseded, prev.TokenFingerprint, next.TokenFingerprint)
	s.states[tok.ConnectionID] = next
	tok.IssuedAt = s.precision(tok.IssuedAt)
	s.tokens[tok.ConnectionID] = tok
	if !ok || s.mutation == "returns no previous state" {
		return finchreauth.State{}, nil
	}
	prev.Superseded = slices.Clone(prev.Superseded)
	return prev, nil
}

func (s *refStore) supersede(list []string, old, cur string) []string {
	limit := 8
	if s.mutation == "remembers 4" {
		limit = 4
	}
	var out []string
	for _, fp := range list {
		if fp != cur && fp != old {
			out = append(out, fp)
		}
	}
	switch {
	case old == "":
	case old == cur && s.mutation != "same token supersedes itself":
	case s.mutation == "appends superseded":
		out = append(out, old)
	default:
		out = slices.Insert(out, 0, old)
	}
	if s.mutation == "current stays superseded" && old != cur && slices.Contains(list, cur) {
		out = append(out, cur)
	}
	return out[:min(len(out), limit)]
}

func (s *refStore) Token(ctx context.Context, connectionID string) (finchreauth.Token, error) {
	if err := s.ctxErr(ctx); err != nil {
		return finchreauth.Token{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[connectionID]
	if !ok {
		return finchreauth.Token{}, finchreauth.ErrNotFound
	}
	return tok, nil
}

func (s *refStore) State(ctx context.Context, key string) (finchreauth.State, error) {
	if err := s.ctxErr(ctx); err != nil {
		return finchreauth.State{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[key]
	if !ok {
		return finchreauth.State{}, finchreauth.ErrNotFound
	}
	st.Superseded = slices.Clone(st.Superseded)
	return st, nil
}

func TestRefStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) finchreauth.Store { return newRefStore("") })
}

// mutantEnv tells a child test process which mutation to run the suite on.
const mutantEnv = "STORETEST_MUTANT"

// TestMutant runs the suite on a broken store; TestStoreSuiteCatchesMutants runs
// it in a child process for each mutation and expects it to fail.
func TestMutant(t *testing.T) {
	m := os.Getenv(mutantEnv)
	if m == "" {
		t.Skip("run by TestStoreSuiteCatchesMutants")
	}
	storetest.Run(t, func(*testing.T) finchreauth.Store { return newRefStore(m) })
}

func TestStoreSuiteCatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per mutation")
	}
	for _, m := range []string{
		"ignores cancelled context",
		"keeps milliseconds",
		"check then act",
		"never stale",
		"stale call takes lease",
		"lease ends after its end",
		"notifies notified episodes",
		"never renews",
		"renewal keeps old lease",
		"every mark transitions",
		"joining mark renames episode",
		"notifies any episode",
		"notify creates state",
		"error shows the token",
		"no CAS",
		"refuses equal IssuedAt",
		"refusal ends episode",
		"keeps episode",
		"clears notified only",
		"returns no previous state",
		"remembers 4",
		"same token supersedes itself",
		"appends superseded",
		"current stays superseded",
		"forgets the broken token",
	} {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$", "-test.count=1")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed a store that %s (err %v)", m, err)
			}
			if !strings.Contains(string(out), "--- FAIL: TestMutant/") {
				t.Fatalf("the suite crashed rather than failing on a store that %s:\n%s", m, out)
			}
			if strings.Contains(string(out), "storetest-secret-") {
				t.Errorf("the suite's failure output for a store that %s contains an access token", m)
			}
		})
	}
}

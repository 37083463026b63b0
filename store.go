package finchreauth

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/finchkit/finchreauth/internal/fingerprints"
	"github.com/patrickmn/go-cache"
)

// Store records, per connection, whether it needs re-authentication and the
// token it should use. The Transport calls MarkReauth and MarkNotified once per
// collapsed detection; the callback handler calls SaveToken after a successful
// reconnect. A Store shared by several processes (see the store modules in
// this repository) makes "one notification per broken connection" hold across
// all of them; the in-memory store makes it hold within one process.
//
// Implementations must be safe for concurrent use. Each method's decision must
// be atomic: two concurrent MarkReauth calls for one key can never both report
// Transitioned or Notify. Run the suite in package storetest against an
// implementation to check it.
type Store interface {
	// MarkReauth records that m.Key needs re-authentication, using m.At as
	// the current time:
	//   - if m.TokenFingerprint names a token that SaveToken has since
	//     replaced, the detection concerns a superseded token: it reports
	//     Stale and records nothing;
	//   - otherwise, if the key knows no token (State.TokenFingerprint is
	//     empty: the application never saved one through the store), it
	//     records m.TokenFingerprint as the key's token, so that the
	//     SaveToken that ends the episode supersedes it;
	//   - if the key has no episode, it starts one (ID m.Episode, Since
	//     m.At) and reports Transitioned;
	//   - it grants the notification lease (Notify, with the lease running
	//     until m.LeaseUntil) when it starts the episode, or when the episode
	//     is not yet notified and the previous lease ended at or before m.At.
	MarkReauth(ctx context.Context, m Mark) (MarkResult, error)

	// MarkNotified records that the notification for the episode succeeded,
	// so that it is never sent again. It does nothing (and succeeds) when
	// the key's current episode is another one or there is none.
	MarkNotified(ctx context.Context, key, episode string) error

	// SaveToken stores tok as the connection's token and ends any episode on
	// key tok.ConnectionID, atomically; the token it replaces joins the
	// superseded ones (the store remembers at least the last 8). It returns
	// the state the key had before, a zero State when there was none. It
	// fails with ErrStaleToken, changing nothing, when the saved token was
	// issued after tok.
	SaveToken(ctx context.Context, tok Token) (prev State, err error)

	// Token returns the connection's saved token, or ErrNotFound.
	Token(ctx context.Context, connectionID string) (Token, error)

	// State returns what the store knows of key, or ErrNotFound.
	State(ctx context.Context, key string) (State, error)
}

// Mark is what a Transport asks a Store to record when Finch answers
// reauthenticate_user.
type Mark struct {
	// Key names the connection in the store: the connection id, or, when
	// /introspect could not tell it, "fp:" followed by the token fingerprint.
	Key              string
	ConnectionID     string // empty when unknown
	TokenFingerprint string
	Episode          string    // the id the episode takes if this call starts one
	At               time.Time // when Finch answered
	LeaseUntil       time.Time // how long a granted notification lease lasts
}

// MarkResult is a Store's answer to MarkReauth.
type MarkResult struct {
	// Transitioned reports that this call moved the key from healthy to
	// needs-re-authentication: it started the episode.
	Transitioned bool
	// Notify reports that this caller holds the notification lease: it must
	// notify and then call MarkNotified. At most one caller holds it at a time.
	Notify bool
	// Notified reports that the current episode's notification succeeded.
	Notified bool
	// Stale reports that the token concerned was superseded by a newer saved
	// token; nothing was recorded.
	Stale bool
	// Episode and Since identify the key's current episode (zero if Stale).
	Episode string
	Since   time.Time
}

// State is what a Store knows about one key.
type State struct {
	Key          string
	ConnectionID string

	// NeedsReauth is true from the first MarkReauth until SaveToken.
	NeedsReauth bool
	Episode     string
	Since       time.Time // when the current episode began
	Notified    bool      // the episode's notification succeeded
	LeaseUntil  time.Time // the notification lease, while one is held

	// The connection's current token, by fingerprint only: the one
	// SaveToken saved or, if none was, the one a MarkReauth named.
	// TokenIssuedAt is zero in the second case.
	TokenFingerprint string
	TokenIssuedAt    time.Time
	// Superseded lists the fingerprints of tokens SaveToken replaced,
	// newest first.
	Superseded []string
}

var errEmptyToken = errors.New("finchreauth: token needs a connection id and an access token")

// MemoryStore is a Store held in the memory of one process, on go-cache with
// no expiry and no janitor goroutine. Use it for a single replica and in
// tests; use a shared store when several processes talk to Finch.
// The zero value is not usable: call NewMemoryStore.
type MemoryStore struct {
	mu     sync.Mutex   // makes every read-modify-write atomic
	states *cache.Cache // key -> State
	tokens *cache.Cache // connection id -> Token
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		states: cache.New(cache.NoExpiration, 0),
		tokens: cache.New(cache.NoExpiration, 0),
	}
}

func (s *MemoryStore) state(key string) (State, bool) {
	v, ok := s.states.Get(key)
	if !ok {
		return State{}, false
	}
	return v.(State), true
}

// MarkReauth implements Store.
func (s *MemoryStore) MarkReauth(ctx context.Context, m Mark) (MarkResult, error) {
	if err := ctx.Err(); err != nil {
		return MarkResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, _ := s.state(m.Key)
	if slices.Contains(st.Superseded, m.TokenFingerprint) {
		return MarkResult{Stale: true}, nil
	}
	if st.TokenFingerprint == "" {
		st.TokenFingerprint = m.TokenFingerprint
	}
	var res MarkResult
	switch {
	case !st.NeedsReauth:
		st.Key = m.Key
		st.NeedsReauth, st.Episode, st.Since, st.Notified = true, m.Episode, m.At, false
		st.LeaseUntil = m.LeaseUntil
		res.Transitioned, res.Notify = true, true
	case !st.Notified && !st.LeaseUntil.After(m.At):
		st.LeaseUntil = m.LeaseUntil
		res.Notify = true
	}
	if st.ConnectionID == "" {
		st.ConnectionID = m.ConnectionID
	}
	s.states.Set(m.Key, st, cache.NoExpiration)
	res.Episode, res.Since, res.Notified = st.Episode, st.Since, st.Notified
	return res, nil
}

// MarkNotified implements Store.
func (s *MemoryStore) MarkNotified(ctx context.Context, key, episode string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.state(key)
	if !ok || !st.NeedsReauth || st.Episode != episode {
		return nil
	}
	st.Notified, st.LeaseUntil = true, time.Time{}
	s.states.Set(key, st, cache.NoExpiration)
	return nil
}

// SaveToken implements Store.
func (s *MemoryStore) SaveToken(ctx context.Context, tok Token) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	if tok.ConnectionID == "" || tok.AccessToken == "" {
		return State{}, errEmptyToken
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, _ := s.state(tok.ConnectionID)
	if prev.TokenFingerprint != "" && prev.TokenIssuedAt.After(tok.IssuedAt) {
		return State{}, ErrStaleToken
	}
	next := State{
		Key:              tok.ConnectionID,
		ConnectionID:     tok.ConnectionID,
		TokenFingerprint: tok.Fingerprint(),
		TokenIssuedAt:    tok.IssuedAt,
		Superseded:       fingerprints.Supersede(prev.Superseded, prev.TokenFingerprint, tok.Fingerprint()),
	}
	s.tokens.Set(tok.ConnectionID, tok, cache.NoExpiration)
	s.states.Set(tok.ConnectionID, next, cache.NoExpiration)
	return prev, nil
}

// Token implements Store.
func (s *MemoryStore) Token(ctx context.Context, connectionID string) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	v, ok := s.tokens.Get(connectionID)
	if !ok {
		return Token{}, ErrNotFound
	}
	return v.(Token), nil
}

// State implements Store.
func (s *MemoryStore) State(ctx context.Context, key string) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.state(key)
	if !ok {
		return State{}, ErrNotFound
	}
	st.Superseded = slices.Clone(st.Superseded)
	return st, nil
}

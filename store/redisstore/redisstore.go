package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// Store is a finchreauth.Store in Redis. Set its fields and share it: it is
// safe for concurrent use, and any number of processes can use the same
// Redis and Prefix. Do not change the fields after the first call.
//
// The zero value is not usable: calls fail with an error naming the missing
// field.
type Store struct {
	// Client reaches Redis: a *redis.Client, *redis.ClusterClient or
	// *redis.Ring. Required. The Store never closes it.
	Client redis.UniversalClient

	// Prefix starts every key the Store writes. If empty, "finchreauth:".
	Prefix string

	// Sealer, if set, seals tokens before they are written and opens them
	// when read (see tokenseal.NewAESGCM); the connection id is the
	// additional data. If nil, tokens are stored as they are.
	Sealer tokenseal.Sealer
}

var _ finchreauth.Store = (*Store)(nil)

// maxSuperseded is how many replaced fingerprints a hash keeps.
const maxSuperseded = 16

var errNoClient = errors.New("redisstore: Store's Client is nil")

// check returns an error if the Store cannot be used or ctx is done, so
// that a cancelled call never reaches Redis.
func (s *Store) check(ctx context.Context) error {
	if s.Client == nil {
		return errNoClient
	}
	return ctx.Err()
}

func (s *Store) key(k string) string {
	if s.Prefix == "" {
		return "finchreauth:" + k
	}
	return s.Prefix + k
}

// micros formats t as microseconds since the Unix epoch; the zero time is "".
func micros(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

// parseMicros reads what micros wrote; "" is the zero time.
func parseMicros(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("redisstore: bad time %q", s)
	}
	return time.UnixMicro(n).UTC(), nil
}

// MarkReauth implements finchreauth.Store, in one Lua script.
func (s *Store) MarkReauth(ctx context.Context, m finchreauth.Mark) (finchreauth.MarkResult, error) {
	if err := s.check(ctx); err != nil {
		return finchreauth.MarkResult{}, err
	}
	v, err := markScript.Run(ctx, s.Client, []string{s.key(m.Key)},
		m.ConnectionID, m.TokenFingerprint, m.Episode, micros(m.At), micros(m.LeaseUntil)).StringSlice()
	if err != nil {
		return finchreauth.MarkResult{}, fmt.Errorf("redisstore: mark %s: %w", m.Key, err)
	}
	if len(v) == 1 && v[0] == "stale" {
		return finchreauth.MarkResult{Stale: true}, nil
	}
	if len(v) != 4 {
		return finchreauth.MarkResult{}, fmt.Errorf("redisstore: mark %s: script answered %d values", m.Key, len(v))
	}
	since, err := parseMicros(v[2])
	if err != nil {
		return finchreauth.MarkResult{}, err
	}
	return finchreauth.MarkResult{
		Transitioned: v[0] == "start",
		Notify:       v[0] == "start" || v[0] == "lease",
		Notified:     v[3] == "1",
		Episode:      v[1],
		Since:        since,
	}, nil
}

// MarkNotified implements finchreauth.Store.
func (s *Store) MarkNotified(ctx context.Context, key, episode string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := notifiedScript.Run(ctx, s.Client, []string{s.key(key)}, episode).Err(); err != nil {
		return fmt.Errorf("redisstore: mark %s notified: %w", key, err)
	}
	return nil
}

var errEmptyToken = errors.New("redisstore: token needs a connection id and an access token")

// SaveToken implements finchreauth.Store: a compare-and-set on IssuedAt in
// one Lua script.
func (s *Store) SaveToken(ctx context.Context, tok finchreauth.Token) (finchreauth.State, error) {
	if err := s.check(ctx); err != nil {
		return finchreauth.State{}, err
	}
	if tok.ConnectionID == "" || tok.AccessToken == "" {
		return finchreauth.State{}, errEmptyToken
	}
	fp := tok.Fingerprint()
	stored := []byte(tok.AccessToken)
	if s.Sealer != nil {
		var err error
		if stored, err = s.Sealer.Seal(stored, []byte(tok.ConnectionID)); err != nil {
			return finchreauth.State{}, fmt.Errorf("redisstore: seal token %s: %w", fp, err)
		}
	}
	v, err := saveScript.Run(ctx, s.Client, []string{s.key(tok.ConnectionID)},
		tok.ConnectionID, stored, fp, micros(tok.IssuedAt), maxSuperseded).StringSlice()
	if err != nil {
		return finchreauth.State{}, fmt.Errorf("redisstore: save token %s of %s: %w", fp, tok.ConnectionID, err)
	}
	switch {
	case len(v) == 1 && v[0] == "stale":
		return finchreauth.State{}, finchreauth.ErrStaleToken
	case len(v) == 1 && v[0] == "new":
		return finchreauth.State{}, nil
	case len(v) == 10 && v[0] == "ok":
		return parseState(tok.ConnectionID, v[1:])
	}
	return finchreauth.State{}, fmt.Errorf("redisstore: save token %s of %s: script answered %d values", fp, tok.ConnectionID, len(v))
}

// stateFields are the hash fields a State is read from, in parseState's order.
var stateFields = []string{"conn", "nr", "ep", "since", "ntf", "lease", "fp", "iat", "sup"}

func parseState(key string, v []string) (finchreauth.State, error) {
	st := finchreauth.State{
		Key:              key,
		ConnectionID:     v[0],
		NeedsReauth:      v[1] == "1",
		Episode:          v[2],
		Notified:         v[4] == "1",
		TokenFingerprint: v[6],
		Superseded:       strings.Fields(v[8]),
	}
	if len(st.Superseded) == 0 {
		st.Superseded = nil
	}
	var err error
	for _, f := range []struct {
		t *time.Time
		s string
	}{{&st.Since, v[3]}, {&st.LeaseUntil, v[5]}, {&st.TokenIssuedAt, v[7]}} {
		if *f.t, err = parseMicros(f.s); err != nil {
			return finchreauth.State{}, err
		}
	}
	return st, nil
}

// Token implements finchreauth.Store.
func (s *Store) Token(ctx context.Context, connectionID string) (finchreauth.Token, error) {
	if err := s.check(ctx); err != nil {
		return finchreauth.Token{}, err
	}
	v, err := s.Client.HMGet(ctx, s.key(connectionID), "tok", "iat").Result()
	if err != nil {
		return finchreauth.Token{}, fmt.Errorf("redisstore: token of %s: %w", connectionID, err)
	}
	stored, ok := v[0].(string)
	if !ok {
		return finchreauth.Token{}, finchreauth.ErrNotFound
	}
	iat, _ := v[1].(string)
	tok := finchreauth.Token{ConnectionID: connectionID}
	if tok.IssuedAt, err = parseMicros(iat); err != nil {
		return finchreauth.Token{}, err
	}
	b := []byte(stored)
	if s.Sealer != nil {
		if b, err = s.Sealer.Open(b, []byte(connectionID)); err != nil {
			return finchreauth.Token{}, fmt.Errorf("redisstore: token of %s: %w", connectionID, err)
		}
	}
	tok.AccessToken = string(b)
	return tok, nil
}

// State implements finchreauth.Store.
func (s *Store) State(ctx context.Context, key string) (finchreauth.State, error) {
	if err := s.check(ctx); err != nil {
		return finchreauth.State{}, err
	}
	v, err := s.Client.HMGet(ctx, s.key(key), stateFields...).Result()
	if err != nil {
		return finchreauth.State{}, fmt.Errorf("redisstore: state of %s: %w", key, err)
	}
	fields := make([]string, len(v))
	found := false
	for i, x := range v {
		if str, ok := x.(string); ok {
			fields[i], found = str, true
		}
	}
	if !found {
		return finchreauth.State{}, finchreauth.ErrNotFound
	}
	return parseState(key, fields)
}

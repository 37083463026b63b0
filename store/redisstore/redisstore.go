package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/internal/quote"
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
	// The Store adds the hash tag {finchreauth} after it, so that all its
	// keys are in one Redis Cluster slot; a Prefix with a hash tag of its
	// own ("app1:{app1}:") picks the slot instead.
	Prefix string

	// Sealer, if set, seals tokens before they are written and opens them
	// when read (see tokenseal.NewAESGCM); the connection id is the
	// additional data. A record whose token is stored in plaintext is then
	// refused until Migrate, run with the Sealer, seals it. If nil, tokens
	// are stored in plaintext, and a record whose token is sealed cannot be
	// read.
	Sealer tokenseal.Sealer
}

var _ finchreauth.Store = (*Store)(nil)

// Errors of a Store that cannot be used, or of a call that names nothing.
var (
	errNoClient = errors.New("redisstore: Store's Client is nil")
	errEmptyID  = errors.New("redisstore: empty connection id or fingerprint")
	errLimit    = errors.New("redisstore: Query.Limit must be positive")
)

// The fields of a record's hash. A field that would be empty is absent.
const (
	fVersion      = "version"      // the record's Version
	fToken        = "token"        // the token, sealed when fSealed is "1"
	fSealed       = "sealed"       // "1" if fToken holds a tokenseal value
	fSince        = "since"        // microseconds since the Unix epoch
	fDue          = "due"          // likewise
	fData         = "data"         // the Transport's bytes, as given
	fFingerprints = "fingerprints" // encodeList(rec.Fingerprints)
)

// maxScore bounds the microseconds a sorted set's scores (doubles) hold
// exactly: the years 1685 to 2255.
const maxScore = 1 << 53

// Get implements finchreauth.Store. A connection whose hash is gone is
// finchreauth.ErrNotFound, even if an index still names it (Redis evicted
// the hash): the Store holds no record of it, and the next Put of the
// connection, at Version 0, writes a new one and sets its index entries
// right.
func (s *Store) Get(ctx context.Context, connectionID string) (finchreauth.Record, error) {
	k, err := s.named(ctx, connectionID)
	if err != nil {
		return finchreauth.Record{}, err
	}
	h, err := s.Client.HGetAll(ctx, k.record(connectionID)).Result()
	if err != nil {
		return finchreauth.Record{}, s.fail(ctx, "get "+quote.ID(connectionID), err)
	}
	if len(h) == 0 {
		return finchreauth.Record{}, finchreauth.ErrNotFound
	}
	return s.decode(connectionID, h)
}

// Put implements finchreauth.Store, in one Lua script: the compare-and-set
// on Version, the hash, both indexes and the fingerprint keys change
// together or not at all.
func (s *Store) Put(ctx context.Context, rec finchreauth.Record) (int64, error) {
	k, err := s.named(ctx, rec.ConnectionID)
	if err != nil {
		return 0, err
	}
	for _, fp := range rec.Fingerprints {
		if fp == "" {
			return 0, errEmptyID
		}
	}
	w := write{id: rec.ConnectionID, version: rec.Version, data: rec.Data, fingerprints: rec.Fingerprints}
	if w.since, err = score(rec.Since); err != nil {
		return 0, fmt.Errorf("redisstore: put %s: Since %w", quote.ID(rec.ConnectionID), err)
	}
	if w.due, err = score(rec.Due); err != nil {
		return 0, fmt.Errorf("redisstore: put %s: Due %w", quote.ID(rec.ConnectionID), err)
	}
	if w.token, w.sealed, err = s.seal(rec); err != nil {
		return 0, err
	}
	return s.put(ctx, k, w)
}

// write is a record as the hash holds it.
type write struct {
	id           string
	version      int64 // the compare-and-set's expected Version
	token        []byte
	sealed       bool
	since, due   string // score's results
	data         []byte
	fingerprints []string
}

// put runs putScript. It returns finchreauth.ErrConflict when the stored
// Version is not w.version.
func (s *Store) put(ctx context.Context, k layout, w write) (int64, error) {
	keys := make([]string, 0, 5+len(w.fingerprints))
	keys = append(keys, k.record(w.id), k.sinceIndex(), k.dueIndex(), k.plaintext(), k.allIndex())
	for _, fp := range w.fingerprints {
		keys = append(keys, k.fingerprint(fp))
	}
	sealed := ""
	if w.sealed {
		sealed = "1"
	}
	v, err := putScript.Run(ctx, s.Client, keys,
		w.version, w.id, w.token, sealed, w.since, w.due, w.data, encodeList(w.fingerprints)).Int64()
	if err != nil {
		return 0, s.fail(ctx, "put "+quote.ID(w.id), err)
	}
	if v == 0 {
		return 0, finchreauth.ErrConflict
	}
	return v, nil
}

// Lookup implements finchreauth.Store.
func (s *Store) Lookup(ctx context.Context, fingerprint string) (string, error) {
	k, err := s.named(ctx, fingerprint)
	if err != nil {
		return "", err
	}
	id, err := s.Client.Get(ctx, k.fingerprint(fingerprint)).Result()
	if errors.Is(err, redis.Nil) {
		return "", finchreauth.ErrNotFound
	}
	if err != nil {
		return "", s.fail(ctx, "lookup "+quote.ID(fingerprint), err)
	}
	return id, nil
}

// List implements finchreauth.Store, in one Lua script that reads the index
// and the records it names, so that every record comes back as it is in
// the index: the since or due index, or for Query.Every the index of every
// record, in connection id order. A record it cannot read (a token it
// cannot open, or stored in plaintext where the Store has a Sealer; a hash
// that is gone while the index names it) comes back in its place with only
// its ConnectionID, the time the listing orders by (none for Every) and
// Err set.
func (s *Store) List(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	k, err := s.layout(ctx)
	if err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, errLimit
	}
	if every(q) {
		v, err := listEveryScript.Run(ctx, s.Client, []string{k.allIndex()}, k.record(""), q.AfterID, q.Limit).Slice()
		if err != nil {
			return nil, s.fail(ctx, "list", err)
		}
		return s.listed(q, v), nil
	}
	// The scores from lo to hi; first, if at is set, the records at score
	// at whose id sorts after q.AfterID. Stored times are whole
	// microseconds: a bound between two is the one before.
	index, lo, hi, at := k.sinceIndex(), "-inf", "+inf", ""
	if !q.DueBy.IsZero() {
		index = k.dueIndex()
		switch us := q.DueBy.Truncate(time.Microsecond).UnixMicro(); {
		case us <= -maxScore:
			return nil, nil // no Put stores a Due that early
		case us < maxScore:
			hi = strconv.FormatInt(us, 10)
		}
	}
	if !q.AfterTime.IsZero() {
		after := q.AfterTime.Truncate(time.Microsecond)
		switch us := after.UnixMicro(); {
		case us >= maxScore, !q.DueBy.IsZero() && q.AfterTime.After(q.DueBy):
			return nil, nil // nothing is after the cursor
		case us > -maxScore:
			lo = "(" + strconv.FormatInt(us, 10)
			if after.Equal(q.AfterTime) {
				at = strconv.FormatInt(us, 10)
			}
		}
	}
	v, err := listScript.Run(ctx, s.Client, []string{index}, k.record(""), lo, hi, at, q.AfterID, q.Limit).Slice()
	if err != nil {
		return nil, s.fail(ctx, "list", err)
	}
	return s.listed(q, v), nil
}

// listed decodes listScript's answer to q: the id, the score and the hash of
// each record.
func (s *Store) listed(q finchreauth.Query, v []any) []finchreauth.Record {
	out := make([]finchreauth.Record, 0, len(v)/3)
	for i := 0; i+2 < len(v); i += 3 {
		id, _ := v[i].(string)
		score, _ := v[i+1].(string)
		flat, _ := v[i+2].([]any)
		h := make(map[string]string, len(flat)/2)
		for j := 0; j+1 < len(flat); j += 2 {
			f, _ := flat[j].(string)
			h[f], _ = flat[j+1].(string)
		}
		r, err := s.decode(id, h)
		if len(h) == 0 {
			err = fmt.Errorf("redisstore: the record of %s is gone, and the %s index still names it: evicted (a maxmemory-policy other than noeviction) or deleted behind the Store's back", quote.ID(id), indexName(q))
		}
		if err != nil {
			r = unreadable(q, id, score, err)
		}
		out = append(out, r)
	}
	return out
}

// every reports whether q lists every record, by connection id.
func every(q finchreauth.Query) bool { return q.Every && q.DueBy.IsZero() }

// indexName names the index q reads, for an error.
func indexName(q finchreauth.Query) string {
	switch {
	case every(q):
		return "all"
	case q.DueBy.IsZero():
		return "since"
	}
	return "due"
}

// unreadable is what List returns for a record it could not read: its
// connection id, the time q orders by (the index's score; none for Every)
// and why.
func unreadable(q finchreauth.Query, id, score string, err error) finchreauth.Record {
	r := finchreauth.Record{ConnectionID: id, Err: err}
	if every(q) {
		return r
	}
	us, perr := strconv.ParseFloat(score, 64)
	if perr != nil {
		r.Err = fmt.Errorf("%w; and its score %s in the index is not a number", err, quote.ID(score))
	}
	at := time.UnixMicro(int64(us)).UTC()
	if q.DueBy.IsZero() {
		r.Since = at
	} else {
		r.Due = at
	}
	return r
}

// seal returns the token as the hash stores it.
func (s *Store) seal(rec finchreauth.Record) (token []byte, sealed bool, err error) {
	if rec.Token == "" {
		return nil, false, nil
	}
	if s.Sealer == nil {
		return []byte(rec.Token), false, nil
	}
	b, err := s.Sealer.Seal([]byte(rec.Token), []byte(rec.ConnectionID))
	if err != nil {
		return nil, false, fmt.Errorf("redisstore: seal token %s of %s: %w", rec.Token.Fingerprint(), quote.ID(rec.ConnectionID), err)
	}
	return b, true, nil
}

// decode reads a record's hash. It opens a sealed token, and fails rather
// than return one it cannot open.
func (s *Store) decode(id string, h map[string]string) (finchreauth.Record, error) {
	bad := func(field string) error {
		return fmt.Errorf("redisstore: the record of %s has a malformed %s field", quote.ID(id), field)
	}
	r := finchreauth.Record{ConnectionID: id}
	var err error
	if r.Version, err = strconv.ParseInt(h[fVersion], 10, 64); err != nil {
		return finchreauth.Record{}, bad(fVersion)
	}
	for _, t := range []struct {
		field string
		to    *time.Time
	}{{fSince, &r.Since}, {fDue, &r.Due}} {
		if v, ok := h[t.field]; ok {
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return finchreauth.Record{}, bad(t.field)
			}
			*t.to = time.UnixMicro(us).UTC()
		}
	}
	if v, ok := h[fFingerprints]; ok {
		if r.Fingerprints, err = decodeList(v); err != nil {
			return finchreauth.Record{}, bad(fFingerprints)
		}
	}
	if v, ok := h[fData]; ok {
		r.Data = []byte(v)
	}
	if v, ok := h[fToken]; ok {
		sealed := h[fSealed] == "1"
		switch {
		case sealed && s.Sealer == nil:
			return finchreauth.Record{}, fmt.Errorf("redisstore: the token of %s is sealed and the Store has no Sealer: set Store.Sealer to the tokenseal.AESGCM that sealed it", quote.ID(id))
		case sealed:
			b, err := s.Sealer.Open([]byte(v), []byte(id))
			if err != nil {
				return finchreauth.Record{}, fmt.Errorf("redisstore: open the token of %s: %w", quote.ID(id), err)
			}
			r.Token = finchreauth.Token(b)
		case s.Sealer != nil:
			// Anyone who can write to Redis could have put it there.
			return finchreauth.Record{}, fmt.Errorf("redisstore: the token of %s is stored in plaintext and the Store has a Sealer: run Migrate with the Sealer set, which seals it", quote.ID(id))
		default:
			r.Token = finchreauth.Token(v)
		}
	}
	return r, nil
}

// score formats t as a sorted-set score: microseconds since the Unix
// epoch, or "" for the zero time.
func score(t time.Time) (string, error) {
	if t.IsZero() {
		return "", nil
	}
	us := t.UnixMicro()
	if us <= -maxScore || us >= maxScore {
		return "", errors.New("is outside the years 1685 to 2255, which Redis orders to the microsecond")
	}
	return strconv.FormatInt(us, 10), nil
}

// encodeList writes each string as its length, a colon and its bytes, so
// that any bytes come back as they were.
func encodeList(list []string) string {
	var b strings.Builder
	for _, s := range list {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

// decodeList reads what encodeList wrote.
func decodeList(s string) ([]string, error) {
	var list []string
	for s != "" {
		n, rest, ok := strings.Cut(s, ":")
		l, err := strconv.Atoi(n)
		if !ok || err != nil || l < 0 || l > len(rest) {
			return nil, errors.New("malformed list")
		}
		list, s = append(list, rest[:l]), rest[l:]
	}
	return list, nil
}

// fail wraps an error from Redis; a done context's error is returned as it
// is.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

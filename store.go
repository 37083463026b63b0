package finchreauth

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store keeps one Record per Finch connection for every Transport that shares
// it. The Transport holds all the logic (episodes, leases, reminders, which
// token wins); a Store only loads records, writes them with a compare-and-set,
// finds a connection by a token's fingerprint and lists the open records. A
// Store shared by several processes (see the store modules in this
// repository) makes each decision hold across all of them.
//
// The rules, each checked by package storetest:
//
//  1. Get returns the record the last successful Put stored for the
//     connection, every field as it was given (Since and Due to the
//     microsecond, in any location), with the Version that Put returned; or
//     ErrNotFound. List returns records as Get does. A record the Store
//     holds but cannot return (a token sealed under a key it no longer has,
//     or written in plaintext where a Sealer is set) is an error of Get that
//     is not ErrNotFound, and List returns it in its place with Err set, as
//     it does an entry of its index whose record is gone (Get may answer
//     that one with ErrNotFound: the Store holds no record): one bad record
//     never fails a listing.
//  2. Put stores rec only if the connection's stored Version equals
//     rec.Version (0 when nothing is stored), and returns the new Version,
//     stored+1. Otherwise it changes nothing and returns ErrConflict: of
//     concurrent Puts with one Version, exactly one succeeds. A Put that
//     fails for any reason changes nothing.
//  3. After a successful Put, Lookup of each fingerprint in
//     rec.Fingerprints returns rec.ConnectionID (the connection of the
//     latest Put that listed it), even after a later Put no longer lists
//     it; Lookup of a fingerprint no Put listed returns ErrNotFound.
//  4. List returns the first q.Limit records that match q, in q's order
//     (fewer only when no more match); ConnectionIDs compare as Go strings
//     (bytewise: on PostgreSQL, COLLATE "C"). A Limit that is not positive
//     is an error.
//  5. A call whose context is done fails with the context's error. An
//     empty connection id or fingerprint is an error that is neither
//     ErrNotFound nor ErrConflict.
//
// No error a Store returns may contain an access token. Implementations must
// be safe for concurrent use.
type Store interface {
	Get(ctx context.Context, connectionID string) (Record, error)
	Put(ctx context.Context, rec Record) (version int64, err error)
	Lookup(ctx context.Context, fingerprint string) (connectionID string, err error)
	List(ctx context.Context, q Query) ([]Record, error)
}

// Record is what a Store keeps for one connection. A Store reads only the
// fields it indexes: Version, Fingerprints, Since and Due. Data is the
// Transport's, opaque to the Store.
type Record struct {
	ConnectionID string

	// Version orders the writes of a connection's record: Put assigns it.
	Version int64

	// Token is the connection's current access token, empty if none was
	// saved. A Store should seal it at rest.
	Token Token

	// Fingerprints names every token known to belong to the connection,
	// newest first; Put indexes each for Lookup.
	Fingerprints []string

	// Since is when the connection's open re-authentication episode began;
	// zero when it has none. Due is when the open episode next needs the
	// Transport (a notification to retry, a reminder); zero for never.
	Since time.Time
	Due   time.Time

	// Data is the rest of the record, encoded by the Transport.
	Data []byte

	// Err is set by List, and only there, on a record the Store lists but
	// cannot read: why, naming the connection and never a token. Only
	// ConnectionID and the time the Query orders by (Since or Due; none
	// for Every) are then set, so that a listing goes on past it. The Transport skips
	// such a record, reports Err to its ErrorHandler, and never writes it.
	Err error
}

// Query selects the records Store.List returns.
type Query struct {
	// DueBy, if set, selects the records whose Due is set and not after
	// DueBy, ordered by Due. If zero, List selects every record whose Since
	// is set, ordered by Since. Ties are ordered by ConnectionID.
	DueBy time.Time

	// Every, if set with DueBy zero, selects every record, ordered by
	// ConnectionID: the health sweep's listing of the whole Store (see
	// Transport.Sweep). AfterID continues it; AfterTime is ignored. With
	// DueBy set, Every is ignored.
	Every bool

	// AfterTime and AfterID continue a listing: only records that sort
	// after the pair (that time, that connection id) are returned. Pass
	// the Due (or Since) and ConnectionID of the last record of the
	// previous page; zero values start at the beginning.
	AfterTime time.Time
	AfterID   string

	// Limit is how many records to return at most; it must be positive.
	Limit int
}

// after reports whether r sorts after q's cursor in q's order.
func (q Query) after(r Record) bool {
	if q.Every && q.DueBy.IsZero() {
		return r.ConnectionID > q.AfterID
	}
	at := r.Since
	if !q.DueBy.IsZero() {
		at = r.Due
	}
	if !at.Equal(q.AfterTime) {
		return at.After(q.AfterTime)
	}
	return r.ConnectionID > q.AfterID
}

// matches reports whether q selects r, cursor aside.
func (q Query) matches(r Record) bool {
	if q.Every && q.DueBy.IsZero() {
		return true
	}
	if q.DueBy.IsZero() {
		return !r.Since.IsZero()
	}
	return !r.Due.IsZero() && !r.Due.After(q.DueBy)
}

// storeCall calls the Store inline, under Timeout: a Store call is quick
// and honours its context, so it needs no goroutine of its own. A panic is
// turned into an error. ErrNotFound and ErrConflict are answers, returned as
// they are; any other failure is reported to the ErrorHandler as a
// *HookError ("store"), which is returned.
func storeCall[T any](t *Transport, ctx context.Context, s subject, fn func(context.Context, Store) (T, error)) (v T, err error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout())
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = &HookError{Hook: "store", ConnectionID: s.conn, TokenFingerprint: s.fp, Panic: p, Err: errPanicked}
			t.report(ctx, err)
		}
	}()
	v, err = fn(ctx, t.store)
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return v, err
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	he := &HookError{Hook: "store", ConnectionID: s.conn, TokenFingerprint: s.fp, Err: err}
	t.report(ctx, he)
	return v, he
}

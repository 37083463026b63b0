package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/sqlstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"
)

// storeConfig is what the flags say of the Store.
type storeConfig struct {
	spec   string // -store
	table  string // -table, for SQL
	prefix string // -prefix, for Redis
}

// readStore opens the Store that c names for reading, through a Transport
// whose ErrorHandler counts in skip the records it cannot read; with sealed,
// the tokens are left unopened. The caller calls done when finished.
func readStore(ctx context.Context, c storeConfig, sealed bool, now func() time.Time, skip *skipped) (tr *finchreauth.Transport, name string, done func(), err error) {
	var sealer tokenseal.Sealer
	if sealed {
		sealer = unopened{}
	}
	s, name, closeStore, err := openStore(ctx, c, sealer)
	if err != nil {
		return nil, "", nil, err
	}
	tr = &finchreauth.Transport{Store: s, Now: now, ErrorHandler: skip.add}
	return tr, name, func() { tr.Close(); closeStore() }, nil
}

// openStore opens the Store that c names, with sealer as its Sealer, and
// checks that it answers. The caller calls done when finished with it.
// name says which Store it is (see describe). No error names the spec as
// given, which may hold a password.
func openStore(ctx context.Context, c storeConfig, sealer tokenseal.Sealer) (s store, name string, done func(), err error) {
	name = describe(c)
	scheme, rest, _ := strings.Cut(c.spec, ":")
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		if u, err := url.Parse(c.spec); err != nil || u.Host == "" {
			return nil, "", nil, errors.New("finchreauth: -store: not a valid postgres:// URL")
		}
		db, err := sql.Open("pgx", c.spec)
		if err != nil {
			return nil, "", nil, errors.New("finchreauth: -store: not a valid postgres:// URL")
		}
		st := &sqlstore.Store{DB: db, Dialect: sqlstore.Postgres, Table: c.table, Sealer: sealer}
		return pinged(ctx, st, name, db.PingContext, func() { db.Close() })
	case "sqlite":
		if rest == "" {
			return nil, "", nil, errors.New("finchreauth: -store: sqlite: needs a file path, as sqlite:/var/lib/app/finch.db")
		}
		db, err := sql.Open("sqlite", sqliteDSN(rest))
		if err != nil {
			return nil, "", nil, fmt.Errorf("finchreauth: -store: %w", err)
		}
		st := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Table: c.table, Sealer: sealer}
		return pinged(ctx, st, name, db.PingContext, func() { db.Close() })
	case "redis", "rediss":
		opts, err := redis.ParseURL(c.spec)
		if err != nil {
			return nil, "", nil, errors.New("finchreauth: -store: not a valid redis:// URL (redis://HOST:PORT/DB)")
		}
		// go-redis logs its dial failures itself; the error says the same.
		redis.SetLogger(quiet{})
		client := redis.NewClient(opts)
		st := &redisstore.Store{Client: client, Prefix: c.prefix, Sealer: sealer}
		ping := func(ctx context.Context) error { return client.Ping(ctx).Err() }
		return pinged(ctx, st, name, ping, func() { client.Close() })
	}
	return nil, "", nil, errors.New("finchreauth: -store: want postgres://..., sqlite:PATH or redis://HOST:PORT/DB")
}

// store is what the commands need of a Store: sqlstore.Store and
// redisstore.Store both have it.
type store interface {
	finchreauth.Store
	Reseal(ctx context.Context) (int, error)
	Verify(ctx context.Context) (int, []string, error)
}

// describe names the Store that c says, for the operator: the spec with
// any password replaced by xxxxx, and the table or the key prefix (its
// default if the flag is empty), shown safely.
func describe(c storeConfig) string {
	spec, where := c.spec, "table "+cmp.Or(c.table, "finchreauth")
	if u, err := url.Parse(c.spec); err == nil && u.Host != "" {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		spec = u.Redacted()
	}
	if s := strings.ToLower(c.spec); strings.HasPrefix(s, "redis:") || strings.HasPrefix(s, "rediss:") {
		where = "prefix " + cmp.Or(c.prefix, "finchreauth:")
	}
	return shown(spec, 256) + " (" + shown(where, 128) + ")"
}

// pinged checks that the Store's server answers within 10 seconds.
func pinged(ctx context.Context, s store, name string, ping func(context.Context) error, done func()) (store, string, func(), error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ping(ctx); err != nil {
		done()
		return nil, "", nil, fmt.Errorf("finchreauth: %s does not answer: %w", name, err)
	}
	return s, name, done, nil
}

// sqliteDSN is the file URI for a sqlite: spec: the path, or a file: URI
// as given, opened for reading and writing but never created (a mistyped
// path must not make an empty database), with a busy timeout, so that
// reading while the application writes waits rather than fails.
func sqliteDSN(rest string) string {
	dsn := rest
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if !strings.Contains(dsn, "mode=") {
		dsn += sep + "mode=rw"
		sep = "&"
	}
	if !strings.Contains(dsn, "busy_timeout") {
		dsn += sep + "_pragma=busy_timeout(10000)"
	}
	return dsn
}

// unopened is the Sealer of a Store whose tokens are sealed, for a command
// that never needs one (status -sealed): it leaves every token unopened
// (the record's Token is a placeholder) and seals nothing. Without the key,
// the command cannot learn a token even by mistake.
type unopened struct{}

func (unopened) Seal([]byte, []byte) ([]byte, error) {
	return nil, errors.New("finchreauth: the status command never writes a token")
}

func (unopened) Open([]byte, []byte) ([]byte, error) { return []byte("unopened"), nil }

// quiet is a go-redis logger that logs nothing.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

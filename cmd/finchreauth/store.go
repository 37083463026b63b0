package main

import (
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
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"
)

// storeConfig is what the flags say of the Store.
type storeConfig struct {
	spec   string // -store
	table  string // -table, for SQL
	prefix string // -prefix, for Redis
	sealed bool   // -sealed
}

// openStore opens the Store that c names and checks that it answers. The
// caller calls close when done. No error names the spec as given, which may
// hold a password.
func openStore(ctx context.Context, c storeConfig) (s finchreauth.Store, name string, done func(), err error) {
	var sealer unopened
	scheme, rest, _ := strings.Cut(c.spec, ":")
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		u, err := url.Parse(c.spec)
		if err != nil || u.Host == "" {
			return nil, "", nil, errors.New("finchreauth: -store: not a valid postgres:// URL")
		}
		db, err := sql.Open("pgx", c.spec)
		if err != nil {
			return nil, "", nil, errors.New("finchreauth: -store: not a valid postgres:// URL")
		}
		st := &sqlstore.Store{DB: db, Dialect: sqlstore.Postgres, Table: c.table}
		if c.sealed {
			st.Sealer = sealer
		}
		return pinged(ctx, st, "PostgreSQL at "+u.Host, db.PingContext, func() { db.Close() })
	case "sqlite":
		if rest == "" {
			return nil, "", nil, errors.New("finchreauth: -store: sqlite: needs a file path, as sqlite:/var/lib/app/finch.db")
		}
		db, err := sql.Open("sqlite", sqliteDSN(rest))
		if err != nil {
			return nil, "", nil, fmt.Errorf("finchreauth: -store: %w", err)
		}
		st := &sqlstore.Store{DB: db, Dialect: sqlstore.SQLite, Table: c.table}
		if c.sealed {
			st.Sealer = sealer
		}
		return pinged(ctx, st, "SQLite file "+strings.TrimPrefix(strings.SplitN(rest, "?", 2)[0], "file:"), db.PingContext, func() { db.Close() })
	case "redis", "rediss":
		opts, err := redis.ParseURL(c.spec)
		if err != nil {
			return nil, "", nil, errors.New("finchreauth: -store: not a valid redis:// URL (redis://HOST:PORT/DB)")
		}
		// go-redis logs its dial failures itself; the error says the same.
		redis.SetLogger(quiet{})
		client := redis.NewClient(opts)
		st := &redisstore.Store{Client: client, Prefix: c.prefix}
		if c.sealed {
			st.Sealer = sealer
		}
		ping := func(ctx context.Context) error { return client.Ping(ctx).Err() }
		return pinged(ctx, st, fmt.Sprintf("Redis at %s (db %d)", opts.Addr, opts.DB), ping, func() { client.Close() })
	}
	return nil, "", nil, errors.New("finchreauth: -store: want postgres://..., sqlite:PATH or redis://HOST:PORT/DB")
}

// pinged checks that the Store's server answers within 10 seconds.
func pinged(ctx context.Context, s finchreauth.Store, name string, ping func(context.Context) error, done func()) (finchreauth.Store, string, func(), error) {
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
// that never needs one: it leaves every token unopened (the record's Token
// is a placeholder) and seals nothing. Without the key, the command cannot
// learn a token even by mistake.
type unopened struct{}

func (unopened) Seal([]byte, []byte) ([]byte, error) {
	return nil, errors.New("finchreauth: the status command never writes a token")
}

func (unopened) Open([]byte, []byte) ([]byte, error) { return []byte("unopened"), nil }

// quiet is a go-redis logger that logs nothing.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

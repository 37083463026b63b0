// Command finchreauth is the operator's view of a finchreauth Store: which
// connections need their employer to re-authenticate with Finch, and the
// rotation of the key that seals the tokens.
//
//	finchreauth status -store postgres://user@db.internal:5432/app
//	finchreauth status -store sqlite:/var/lib/app/finch.db
//	finchreauth status -store redis://cache.internal:6379/0 -prefix app1:
//	FINCHREAUTH_SEAL_KEYS=2:...,1:... finchreauth reseal -store postgres://...
//	FINCHREAUTH_SEAL_KEYS=2:... finchreauth verify -store postgres://...
//
// status prints every connection with an open re-authentication episode,
// oldest first, as a table: the connection id, the customer, the provider,
// since when it needs reconnecting and for how long, the notifications its
// customer was sent, when the next reminder is due, and the entities that
// are broken ("all" for the whole connection). Its last line says how many
// and which Store it read: the -store URL with any password replaced by
// xxxxx, and the table or key prefix ("No connection needs
// re-authentication in redis://cache.internal:6379/0 (prefix app1:)."), so
// that a mistyped -table or -prefix shows. It reads the Store through a
// finchreauth.Transport's NeedsReauth, page by page, and never writes to it
// or prints a token.
//
// A record the Store cannot read (a token sealed under a key it lacks,
// stored in plaintext where -sealed says sealed, a Redis hash evicted from
// under its index) does not stop the listing: status prints the rows it
// could read, then on stderr a line per unreadable record, naming the
// connection and why, and their count, and exits with status 1.
//
// Flags of status:
//
//	-store   the Store: postgres://... (or postgresql://), sqlite:PATH (or
//	         sqlite:file:PATH?...), redis://HOST:PORT/DB (or rediss://)
//	-table   the SQL table, as the application's sqlstore.Store.Table (default finchreauth)
//	-prefix  the Redis key prefix, as the application's redisstore.Store.Prefix (default finchreauth:)
//	-sealed  the Store's tokens are sealed (a Sealer is set): read the records
//	         without the key, leaving the tokens unopened
//	-limit   print at most this many connections (default 0: all)
//	-after   start after this cursor, which a run cut short by -limit prints
//
// The cursor is the last row's time and its connection id, percent-encoded.
// -after refuses an id longer than 256 bytes; a cursor after such an id
// holds the shortest id that sorts after every id that begins with the
// same 256 bytes.
//
// reseal and verify take -store, -table and -prefix, and the keys from the
// environment variable FINCHREAUTH_SEAL_KEYS, never from a flag: ID:BASE64
// of each key, comma-separated, the current key first, as
// tokenseal.NewAESGCM takes them. reseal seals every token that is not
// sealed under the current key again under it (see sqlstore.Store.Reseal);
// both then count the tokens still not sealed under it, and name the first.
// Zero means the other keys can be dropped.
//
// Whatever the command prints of a connection id, a customer's name or an
// error is escaped (control, bidi and other non-printing characters, as Go
// writes them: \x1b, \u202e) and cut short: nothing it prints is interpreted
// by a terminal.
//
// The exit status is 0 when the command did its work; 1 when the Store
// could not be read, when some of its records could not be (status), or
// when tokens are left that are not sealed under the current key (reseal,
// verify); and 2 for a usage error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, time.Now)
	stop()
	os.Exit(code)
}

const usage = `usage: finchreauth status -store STORE [-table NAME] [-prefix PREFIX] [-sealed] [-limit N] [-after CURSOR]
       finchreauth reseal -store STORE [-table NAME] [-prefix PREFIX]
       finchreauth verify -store STORE [-table NAME] [-prefix PREFIX]
       finchreauth import -store STORE [-table NAME] [-prefix PREFIX] [-sealed] [-file PATH] [-format csv|jsonl]
                          [-check [-api URL]] [-dry-run] [-concurrency N]

STORE is postgres://..., sqlite:PATH or redis://HOST:PORT/DB.
Run "finchreauth COMMAND -h" for the flags of a command.
`

// run runs the command line args (without the program's name), with getenv
// as the environment, stdin as the standard input (import reads it) and
// now as the clock, and returns the exit status. Whatever it prints goes
// through terminalSafe.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) int {
	stdout, stderr = terminalSafe{stdout}, terminalSafe{stderr}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "status":
		return status(ctx, args[1:], stdout, stderr, now)
	case "reseal", "verify":
		return reseal(ctx, args[0], args[1:], getenv, stdout, stderr)
	case "import":
		return importTokens(ctx, args[1:], getenv, stdin, stdout, stderr, now)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "finchreauth: unknown command \"%s\"\n%s", shown(args[0], maxShown), usage)
	return 2
}

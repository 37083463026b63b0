// Command finchreauth is the operator's view of a finchreauth Store: which
// connections need their employer to re-authenticate with Finch.
//
//	finchreauth status -store postgres://user@db.internal:5432/app
//	finchreauth status -store sqlite:/var/lib/app/finch.db
//	finchreauth status -store redis://cache.internal:6379/0 -prefix app1:
//
// status prints every connection with an open re-authentication episode,
// oldest first, as a table: the connection id, the customer, the provider,
// since when it needs reconnecting and for how long, the notifications its
// customer was sent, when the next reminder is due, and the entities that
// are broken ("all" for the whole connection). It reads the Store through a
// finchreauth.Transport's NeedsReauth, page by page, and never writes to it
// or prints a token.
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
// The exit status is 0 when the listing was printed, 1 when the Store could
// not be read, and 2 for a usage error.
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
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, time.Now)
	stop()
	os.Exit(code)
}

const usage = `usage: finchreauth status -store STORE [-table NAME] [-prefix PREFIX] [-sealed] [-limit N] [-after CURSOR]

STORE is postgres://..., sqlite:PATH or redis://HOST:PORT/DB.
Run "finchreauth status -h" for the flags.
`

// run runs the command line args (without the program's name), with now as
// the clock, and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "status":
		return status(ctx, args[1:], stdout, stderr, now)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "finchreauth: unknown command %q\n%s", args[0], usage)
	return 2
}

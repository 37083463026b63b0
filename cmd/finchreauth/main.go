// Command finchreauth is the operator's view of a finchreauth Store: which
// connections need their employer to re-authenticate with Finch, the
// rotation of the key that seals the tokens, and the import of the tokens
// an application held before it adopted the library.
//
//	finchreauth status -store postgres://user@db.internal:5432/app
//	finchreauth status -store sqlite:/var/lib/app/finch.db
//	finchreauth status -store redis://cache.internal:6379/0 -prefix app1:
//	FINCHREAUTH_SEAL_KEYS=2:...,1:... finchreauth reseal -store postgres://...
//	FINCHREAUTH_SEAL_KEYS=2:... finchreauth verify -store postgres://...
//	finchreauth campaign -store postgres://... -name gusto-2026
//	finchreauth import -store postgres://... < tokens.csv
//	FINCHREAUTH_SEAL_KEYS=2:... finchreauth import -store postgres://... -sealed -format jsonl -file tokens.jsonl
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
// campaign prints where the campaign named -name stands (the Name of the
// finchreauth.Campaign the application gave StartCampaign), as the
// Transport's CampaignProgress counts it over the whole Store: the
// connections asked whose employer has not reconnected yet, how many of
// those are past the campaign's deadline, and those done (reconnected
// since they were asked), naming the Store as status does:
//
//	Campaign "gusto-2026" in postgres://app:xxxxx@db.internal:5432/app (table finchreauth):
//	  asked    2  waiting for their employer to reconnect
//	  overdue  0  of those asked, past the deadline
//	  done     1  reconnected since they were asked
//
// It takes -store, -table, -prefix and -sealed as status does, reads the
// Store and never writes to it or prints a token. A name no connection was
// asked by prints a line that says so, with status 0: check the spelling.
// Records it cannot read are reported as status reports them, with status 1.
//
// reseal and verify take -store, -table and -prefix, and the keys from the
// environment variable FINCHREAUTH_SEAL_KEYS, never from a flag: ID:BASE64
// of each key, comma-separated, the current key first, as
// tokenseal.NewAESGCM takes them. reseal seals every token that is not
// sealed under the current key again under it (see sqlstore.Store.Reseal);
// both then count the tokens still not sealed under it, and name the first.
// Zero means the other keys can be dropped.
//
// import saves the access token an application holds for each of its
// connections into the Store, through a finchreauth.Transport's SaveToken
// (so that the Transport knows each token, and whose it is). It reads them
// from -file or stdin, never from the command line: CSV under the header
// line connection_id,access_token (the columns in either order), or
// (-format jsonl) JSON lines {"connection_id": "...", "access_token": "..."};
// one connection a line, blank lines skipped. Each line ends as
//
//   - imported: the token was saved;
//   - unchanged: the Store holds that token for the connection already, so
//     that a second run of the same input imports nothing;
//   - skipped: the Store holds another token for the connection, and
//     without -check it is left as it is: which one works is Finch's to say;
//   - refused: the line is not a pair (it is never shown: it may hold a
//     token), its connection id is one a Transport refuses (empty, over 256
//     bytes, not UTF-8, a NUL byte), its token is empty or holds a space, a
//     control or a byte that is not ASCII, the input gives its connection
//     different tokens on several lines (each of them is refused: the input
//     does not say which is current; a line that repeats another ends as
//     that one does), or Finch refuses its token (-check);
//   - failed: the Store, or Finch, could not be asked; run the import again.
//
// With -check, where the Store holds another token, SaveToken asks Finch
// (at -api, by default https://api.tryfinch.com: /introspect and a data
// call, made with the token itself) and keeps the token Finch accepts. A
// connection the Store does not know gets its token without Finch being
// asked, as SaveToken saves it; without -check, the command never calls
// Finch. -dry-run reads the input and the Store, says what a run would do,
// and writes nothing. -concurrency bounds the connections read or saved at
// once (default 8).
//
// -sealed says that the application's Store has a Sealer: the tokens are
// sealed with the keys of FINCHREAUTH_SEAL_KEYS, as reseal takes them;
// without -sealed, that variable must be unset. If a token the Store holds
// shows that it seals them and -sealed is not set, nothing is written: in
// plaintext, the application's Store could not read the tokens until its
// Migrate sealed them.
//
// A save may end a connection's re-authentication episode, and the check
// it owes may open one: the OnReconnected call or the customer's
// notification that follows is the application's to make, with its hooks.
// The import leaves it owed in the Store, due a second later, for the
// application's Remind or Run, and says how many it left.
//
// import prints on stderr a line for each line of the input that was not
// imported or unchanged: its number, its connection and why, tokens by
// fingerprint only; then on stdout the counts, naming the Store ("Into
// postgres://... (table finchreauth): imported 3, unchanged 0, skipped 1,
// refused 0, failed 0."). Its exit status is 0 when every line was (in a
// dry run: would be) imported or unchanged, and 1 otherwise, or when the
// input could not be read (without its CSV header, nothing is imported).
//
// Whatever the command prints of a connection id, a customer's name or an
// error is escaped (control, bidi and other non-printing characters, as Go
// writes them: \x1b, \u202e) and cut short: nothing it prints is interpreted
// by a terminal.
//
// The exit status is 0 when the command did its work; 1 when the Store
// could not be read, when some of its records could not be (status,
// campaign), when tokens are left that are not sealed under the current
// key (reseal, verify), or when some lines were not imported (import); and
// 2 for a usage error.
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
       finchreauth campaign -store STORE [-table NAME] [-prefix PREFIX] [-sealed] -name NAME
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
	case "campaign":
		return campaign(ctx, args[1:], stdout, stderr, now)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "finchreauth: unknown command \"%s\"\n%s", shown(args[0], maxShown), usage)
	return 2
}

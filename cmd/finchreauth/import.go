package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/finchkit/finchreauth/store/tokenseal"
)

// The import command saves the access tokens an application already holds
// into its Store, through a finchreauth.Transport's SaveToken, so that the
// library's rules apply. It reads what the Store holds for every
// connection first, then saves the tokens to import, some at a time.

const (
	defaultAPI     = "https://api.tryfinch.com"
	maxConcurrency = 256
)

// importOptions are the flags of the import command.
type importOptions struct {
	store       *storeConfig
	sealed      bool
	file        string
	format      string
	check       bool
	api         string
	dryRun      bool
	concurrency int
}

const importUsage = `usage: finchreauth import -store STORE [flags] [-file PATH] [-format csv|jsonl]

Saves the access token of each connection the input names into the Store, through a
finchreauth.Transport's SaveToken. The input is CSV, a header line connection_id,access_token
then a pair a line, or JSON lines {"connection_id": "...", "access_token": "..."}; never the
command line. A connection the Store does not know gets its token; one whose token it holds is
unchanged; one that holds another token is skipped, unless -check lets Finch decide which works.

`

func importFlags(stderr io.Writer) (*flag.FlagSet, *importOptions) {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, importUsage)
		fs.PrintDefaults()
	}
	o := &importOptions{store: storeFlags(fs)}
	fs.BoolVar(&o.sealed, "sealed", false, "the Store's tokens are sealed (the application's Store has a Sealer): seal the imported ones with the keys of "+envKeys)
	fs.StringVar(&o.file, "file", "-", "the input file; - for stdin")
	fs.StringVar(&o.format, "format", "csv", "the input's format: csv or jsonl")
	fs.BoolVar(&o.check, "check", false, "where the Store holds another token, ask Finch which works; without it, the command never calls Finch")
	fs.StringVar(&o.api, "api", defaultAPI, "the Finch API that -check asks")
	fs.BoolVar(&o.dryRun, "dry-run", false, "read the input and the Store, say what would be done, and write nothing")
	fs.IntVar(&o.concurrency, "concurrency", 8, "at most this many connections read or saved at once")
	return fs, o
}

// importTokens is the import command.
func importTokens(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) int {
	fs, o := importFlags(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	sealer, msg := o.validate(fs, getenv)
	if msg != "" {
		return usageError(fs, stderr, msg)
	}
	es, err := o.read(stdin)
	if err != nil {
		fmt.Fprintln(stderr, shownError(err))
		return 1
	}
	s, name, done, err := openStore(ctx, *o.store, sealer)
	if err != nil {
		fmt.Fprintln(stderr, shownError(err))
		return 1
	}
	defer done()
	im := newImporter(s, o, now)
	im.run(ctx, es)
	im.tr.Close() // waits for what the saves carry out detached
	im.tr.CloseIdleConnections()
	return im.report(es, name, stdout, stderr)
}

// validate checks the flags, and returns the Store's Sealer (nil without
// -sealed) or what is wrong with them. No message shows an argument: an
// operator may have pasted a token there.
func (o *importOptions) validate(fs *flag.FlagSet, getenv func(string) string) (tokenseal.Sealer, string) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	keys := strings.TrimSpace(getenv(envKeys)) != ""
	switch {
	case fs.NArg() > 0:
		return nil, "import takes no argument: the tokens come from -file or stdin, never the command line (the argument is not shown: it may be a token)"
	case o.store.spec == "":
		return nil, "-store is required"
	case o.format != "csv" && o.format != "jsonl":
		return nil, "-format must be csv or jsonl"
	case o.concurrency < 1 || o.concurrency > maxConcurrency:
		return nil, fmt.Sprintf("-concurrency must be from 1 to %d", maxConcurrency)
	case set["api"] && !o.check:
		return nil, "-api names the Finch API that -check asks: add -check"
	case !validAPI(o.api):
		return nil, "-api must be an http:// or https:// URL"
	case !o.sealed && keys:
		return nil, envKeys + " is set: add -sealed to seal the imported tokens with its keys, or unset it if the Store's tokens are in plaintext"
	case !o.sealed:
		return nil, ""
	}
	s, _, err := keysFrom(getenv(envKeys))
	if err != nil {
		return nil, err.Error()
	}
	return s, ""
}

func validAPI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// read reads the entries of the input: -file, or stdin.
func (o *importOptions) read(stdin io.Reader) ([]*entry, error) {
	r := stdin
	if o.file != "-" && o.file != "" {
		f, err := os.Open(o.file)
		if err != nil {
			return nil, fmt.Errorf("finchreauth: import: %w", err)
		}
		defer f.Close()
		r = f
	}
	return readEntries(r, o.format)
}

package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/finchkit/finchreauth/store/tokenseal"
)

// envKeys names the variable that holds the sealing keys of reseal and
// verify: never a flag, which other users of the host can read in the
// process list and which lands in shell histories.
const envKeys = "FINCHREAUTH_SEAL_KEYS"

// reseal is the reseal command (verify, with only verify set): it seals
// every token again under the current key, then counts the tokens that are
// still not sealed under it.
func reseal(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: finchreauth %s -store STORE [flags]\n\n%s\n\n", name, resealUsage[name])
		fs.PrintDefaults()
	}
	c := storeFlags(fs)
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	if c.spec == "" {
		return usageError(fs, stderr, "-store is required")
	}
	sealer, current, err := keysFrom(getenv(envKeys))
	if err != nil {
		return usageError(fs, stderr, err.Error())
	}
	s, where, done, err := openStore(ctx, *c, sealer)
	if err != nil {
		fmt.Fprintln(stderr, shownError(err))
		return 1
	}
	defer done()
	code := 0
	if name == "reseal" {
		n, err := s.Reseal(ctx)
		fmt.Fprintf(stdout, "Sealed %d %s again under key %d in %s.\n", n, plural(n, "token", "tokens"), current, where)
		if err != nil {
			fmt.Fprintf(stderr, "finchreauth: reseal: %s\n", shownError(err))
			code = 1
		}
	}
	return max(code, verify(ctx, s, current, where, stdout, stderr))
}

var resealUsage = map[string]string{
	"reseal": "Seals every token of the Store that is not sealed under the current key again under it,\nthen counts those still not sealed under it. " + keysUsage,
	"verify": "Counts the tokens of the Store that are not sealed under the current key. " + keysUsage,
}

const keysUsage = "The keys come from " + envKeys + ":\nID:BASE64 of each, comma-separated, the current key first (as tokenseal.NewAESGCM takes them)."

// verify prints how many tokens are not sealed under the current key, and
// returns the exit status: 1 if there are any.
func verify(ctx context.Context, s store, current byte, where string, stdout, stderr io.Writer) int {
	stale, first, err := s.Verify(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "finchreauth: verify: %s\n", shownError(err))
		return 1
	case stale == 0:
		fmt.Fprintf(stdout, "Every token in %s is sealed under key %d: the other keys can be dropped.\n", where, current)
		return 0
	}
	ids := make([]string, len(first))
	for i, id := range first {
		ids[i] = "\"" + shown(id, maxShown) + "\""
	}
	fmt.Fprintf(stdout, "In %s, %d %s not sealed under key %d; the first: %s.\n", where, stale, plural(stale, "token is", "tokens are"), current, strings.Join(ids, ", "))
	return 1
}

// keysFrom parses the value of FINCHREAUTH_SEAL_KEYS. Its errors never
// hold a secret.
func keysFrom(v string) (*tokenseal.AESGCM, byte, error) {
	if strings.TrimSpace(v) == "" {
		return nil, 0, errors.New(envKeys + " is not set: want ID:BASE64 of each key, comma-separated, the current key first")
	}
	var keys []tokenseal.Key
	for i, part := range strings.Split(v, ",") {
		id, secret, ok := strings.Cut(strings.TrimSpace(part), ":")
		n, err := strconv.ParseUint(id, 10, 8)
		if !ok || err != nil {
			return nil, 0, fmt.Errorf("%s: key %d of the list: want ID:BASE64, ID from 0 to 255", envKeys, i+1)
		}
		b, err := base64.StdEncoding.DecodeString(secret)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: key %d: not base64", envKeys, n)
		}
		keys = append(keys, tokenseal.Key{ID: byte(n), Secret: b})
	}
	s, err := tokenseal.NewAESGCM(keys[0], keys[1:]...)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", envKeys, err)
	}
	return s, keys[0].ID, nil
}

// Package bench compares finchreauth.Transport with the bare base transport
// and with what users would otherwise put in its place: golang.org/x/oauth2's
// Transport with a static token source, and go-retryablehttp's RoundTripper.
// It is a module of its own so that golang.org/x/oauth2 never becomes a
// requirement of the root module. It holds benchmarks only; see
// BENCHMARKS.md at the repository root and scripts/bench.sh.
package bench

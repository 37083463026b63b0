// Package spectest checks that finchtest, the fake Finch, answers as Finch
// does: its tests drive a finchtest.Server through every route it serves
// and validate each JSON answer (and each webhook body) against Finch's
// OpenAPI specs of January 2024 (copied unchanged into testdata), with the
// newer facts of FINCH.md and the official SDKs laid over them where the
// specs are older. The validator is a small subset of OpenAPI 3.0 schema
// checking: types, nullable, enum, pattern, format, required fields, and no
// field the schema does not declare.
//
// It is its own module so that the root module gains no YAML dependency.
// Run it from this directory:
//
//	go vet ./... && go test -race -count=1 ./...
package spectest

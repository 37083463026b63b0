module github.com/finchkit/finchreauth/bench

go 1.26.0

require (
	github.com/finchkit/finchreauth v0.6.0
	github.com/hashicorp/go-retryablehttp v0.7.8
	golang.org/x/oauth2 v0.38.0
)

require (
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/patrickmn/go-cache v2.1.0+incompatible // indirect
	golang.org/x/sync v0.25.0 // indirect
)

// Not published (see RELEASING.md): the library comes from this tree, in the
// workspace and alone (GOWORK=off). A project copying this file drops the replace.
replace github.com/finchkit/finchreauth => ../

module github.com/finchkit/finchreauth/finchtest/spectest

go 1.26.0

require (
	github.com/finchkit/finchreauth v0.6.0
	go.yaml.in/yaml/v3 v3.0.5
)

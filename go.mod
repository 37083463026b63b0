module github.com/finchkit/finchreauth

go 1.26

package redisstore

import (
	"context"
	"fmt"
	"strings"
)

// hashTag follows the Prefix in every key, so that Redis Cluster puts all
// the keys of a Store in one slot and each script may touch any of them.
const hashTag = "{finchreauth}:"

// layout names the keys of one Store: base is Prefix + hashTag.
type layout struct{ base string }

func (k layout) record(id string) string      { return k.base + "rec:" + id }
func (k layout) fingerprint(fp string) string { return k.base + "fp:" + fp }
func (k layout) sinceIndex() string           { return k.base + "since" }
func (k layout) dueIndex() string             { return k.base + "due" }
func (k layout) allIndex() string             { return k.base + "all" }
func (k layout) plaintext() string            { return k.base + "plaintext" }
func (k layout) schema() string               { return k.base + "schema" }

// prefix returns the Prefix, or its default.
func (s *Store) prefix() string {
	if s.Prefix == "" {
		return "finchreauth:"
	}
	return s.Prefix
}

// layout returns the Store's keys, or an error if the Store cannot be used
// or ctx is done, so that such a call never reaches Redis.
func (s *Store) layout(ctx context.Context) (layout, error) {
	if s.Client == nil {
		return layout{}, errNoClient
	}
	if err := ctx.Err(); err != nil {
		return layout{}, err
	}
	base := s.prefix() + hashTag
	// Redis Cluster hashes the bytes between the first "{" and the first
	// "}" after it, unless there are none: an empty "{}" in the Prefix
	// would spread the keys over the slots.
	open := strings.IndexByte(base, '{')
	if strings.IndexByte(base[open+1:], '}') == 0 {
		return layout{}, fmt.Errorf("redisstore: Prefix %q holds an empty hash tag {}, which would spread the Store's keys over Redis Cluster slots", s.Prefix)
	}
	return layout{base}, nil
}

// named is layout for a call that names a connection or a fingerprint,
// which must not be empty.
func (s *Store) named(ctx context.Context, id string) (layout, error) {
	k, err := s.layout(ctx)
	if err == nil && id == "" {
		err = errEmptyID
	}
	return k, err
}

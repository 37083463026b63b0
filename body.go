package finchreauth

import (
	"io"
	"sync"
)

// replayBody hands back a response body that was partly read to classify it:
// first the bytes already read, then whatever the original body still holds.
// If reading the prefix failed, the same error is returned once the prefix is
// exhausted, so a reader sees exactly what it would have seen without us.
// Close closes the original body exactly once.
type replayBody struct {
	prefix []byte
	err    error // what reading the prefix ended with; nil means "more may follow"
	orig   io.ReadCloser

	closeOnce sync.Once
	closeErr  error
}

func newReplayBody(prefix []byte, err error, orig io.ReadCloser) *replayBody {
	return &replayBody{prefix: prefix, err: err, orig: orig}
}

func (b *replayBody) Read(p []byte) (int, error) {
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.orig.Read(p)
}

func (b *replayBody) Close() error {
	b.closeOnce.Do(func() { b.closeErr = b.orig.Close() })
	return b.closeErr
}

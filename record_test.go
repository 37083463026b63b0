package finchreauth_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/finchkit/finchreauth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// unreadableStore is a Store whose records of some connections cannot be
// read, as when their token was sealed under a key that was dropped: Get
// fails and List returns them with Err set, per the Store contract.
type unreadableStore struct {
	finchreauth.Store
	mu  sync.Mutex
	bad map[string]bool
}

var errSealedElsewhere = errors.New("store: the token is sealed under key 7, which this Sealer does not hold")

func (s *unreadableStore) spoil(conn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bad[conn] = true
}

func (s *unreadableStore) isBad(conn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad[conn]
}

func (s *unreadableStore) Get(ctx context.Context, conn string) (finchreauth.Record, error) {
	if s.isBad(conn) {
		return finchreauth.Record{}, errSealedElsewhere
	}
	return s.Store.Get(ctx, conn)
}

func (s *unreadableStore) List(ctx context.Context, q finchreauth.Query) ([]finchreauth.Record, error) {
	recs, err := s.Store.List(ctx, q)
	for i, r := range recs {
		if s.isBad(r.ConnectionID) {
			recs[i] = finchreauth.Record{ConnectionID: r.ConnectionID, Since: r.Since, Due: r.Due, Err: errSealedElsewhere}
		}
	}
	return recs, err
}

// TestOneUnreadableRecord: a record the Store cannot read costs that record
// alone. Remind sends the other three due reminders, NeedsReauth lists the
// other three (a full page's worth when asked for three), and each listing
// reports the bad record to the ErrorHandler.
func TestOneUnreadableRecord(t *testing.T) {
	ff := newFakeFinch()
	store := &unreadableStore{Store: new(finchreauth.MemoryStore), bad: map[string]bool{}}
	clk := newClock()
	notes := &recorder{}
	errs := &errorLog{}
	tr := &finchreauth.Transport{Base: ff, Store: store, Notifier: notes, Now: clk.Now, ErrorHandler: errs.handle,
		Links: finchreauth.LinkBuilderFunc(func(context.Context, finchreauth.Event) (string, error) { return "https://connect.example/x", nil })}
	defer tr.Close()
	ctx := context.Background()
	// conn_0 breaks first, so that it leads every listing.
	for _, c := range []string{"conn_0", "conn_1", "conn_2", "conn_3"} {
		ff.add("tok_"+c, c)
		ff.setBroken("tok_"+c, true)
		resp, err := tr.RoundTrip(newRequest(t, "GET", api+"/employer/company", "tok_"+c, nil))
		require.NoError(t, err)
		readAll(t, resp)
		waitIdle(t, tr)
		clk.advance(time.Second)
	}
	require.EqualValues(t, 4, notes.n.Load())
	store.spoil("conn_0")

	clk.advance(25 * time.Hour)
	require.NoError(t, tr.Remind(ctx))
	waitIdle(t, tr)
	var reminded []string
	for _, e := range notes.delivered()[4:] {
		reminded = append(reminded, e.Connection.ConnectionID)
	}
	assert.ElementsMatch(t, []string{"conn_1", "conn_2", "conn_3"}, reminded, "the three readable episodes are reminded")

	page, err := tr.NeedsReauth(ctx, finchreauth.Status{}, 3)
	require.NoError(t, err)
	var listed []string
	for _, st := range page {
		listed = append(listed, st.ConnectionID)
	}
	assert.Equal(t, []string{"conn_1", "conn_2", "conn_3"}, listed, "a full page of readable records")

	reported := 0
	for _, err := range errs.all() {
		var he *finchreauth.HookError
		if errors.As(err, &he) && he.ConnectionID == "conn_0" && errors.Is(err, errSealedElsewhere) {
			reported++
		}
	}
	assert.GreaterOrEqual(t, reported, 2, "Remind and NeedsReauth each report the unreadable record")
}

// TestHostileConnectionIDs: a connection id over 256 bytes, or not UTF-8,
// is refused with a clear error by every entry point; one with terminal
// escapes reaches errors quoted, nothing a terminal interprets. A 1 MiB id
// used to produce a 2 MiB error.
func TestHostileConnectionIDs(t *testing.T) {
	ff := newFakeFinch()
	errs := &errorLog{}
	tr := &finchreauth.Transport{Base: ff, ErrorHandler: errs.handle}
	defer tr.Close()
	ctx := context.Background()
	huge := "conn-" + strings.Repeat("\x1b[31m", 1<<20/5)
	for _, id := range []string{huge, "conn-\xff\xfe", "conn-\x00"} {
		_, err := tr.Token(ctx, id)
		require.Error(t, err)
		assert.Less(t, len(err.Error()), 200)
		assert.Error(t, tr.SaveToken(ctx, id, "tok"))
		_, err = tr.Status(ctx, id)
		assert.Error(t, err)
		_, err = tr.ReconnectURL(ctx, id)
		assert.Error(t, err)
	}
	// A webhook naming a hostile id is acknowledged and reported briefly.
	code := postWebhook(t, tr.WebhookHandler(vectorSecret), "msg_hostile", time.Now(), "conn-"+strings.Repeat("\x1b[31m", 60), "", "reauth")
	assert.Equal(t, 200, code)
	for _, err := range errs.all() {
		assert.Less(t, len(err.Error()), 1024)
	}
	// An id with escapes that the Store holds reaches an error escaped.
	escaped := "conn-\x1b]0;owned\x07\u202e"
	he := &finchreauth.HookError{Hook: "store", ConnectionID: escaped, Err: errors.New("boom")}
	assert.NotContains(t, he.Error(), "\x1b")
	assert.NotContains(t, he.Error(), "\u202e")
}

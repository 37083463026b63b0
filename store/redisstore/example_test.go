package redisstore_test

import (
	"context"
	"log"
	"os"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// A Transport whose records live in Redis, with their tokens sealed: every
// replica built this way notifies each broken connection once in all.
func ExampleStore() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}) // or redis.NewClusterClient
	defer client.Close()

	// The key comes from your secret manager, never from Redis. Without a
	// Sealer, Redis holds the tokens in plaintext.
	sealer, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: []byte(os.Getenv("FINCH_TOKEN_KEY"))})
	if err != nil {
		log.Fatal(err)
	}
	store := &redisstore.Store{Client: client, Prefix: "myapp:finch:", Sealer: sealer}
	// At start-up, before the Transport uses the store: converts what an
	// earlier redisstore wrote, and is quick once done.
	if err := store.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	tr := &finchreauth.Transport{Store: store}
	defer tr.Close()
	_ = tr.WrapClient(nil) // use it for every call to Finch
}

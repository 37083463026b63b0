package redisstore_test

import (
	"log"
	"os"

	"github.com/finchkit/finchreauth"
	"github.com/finchkit/finchreauth/store/redisstore"
	"github.com/finchkit/finchreauth/store/tokenseal"
	"github.com/redis/go-redis/v9"
)

// A Transport whose episodes and tokens live in Redis, sealed: every
// replica built this way notifies each broken connection once in all.
func ExampleStore() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()

	// The key comes from your secret manager, never from Redis.
	sealer, err := tokenseal.NewAESGCM(tokenseal.Key{ID: 1, Secret: []byte(os.Getenv("FINCH_TOKEN_KEY"))})
	if err != nil {
		log.Fatal(err)
	}
	tr := &finchreauth.Transport{
		Store: &redisstore.Store{Client: client, Prefix: "myapp:finch:", Sealer: sealer},
	}
	defer tr.Close()
	_ = tr.WrapClient(nil) // use it for every call to Finch
}

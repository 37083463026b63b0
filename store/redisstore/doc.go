// Package redisstore is a finchreauth.Store in Redis, on
// github.com/redis/go-redis/v9, that several processes can share: every
// replica of an application that points its Transport at the same Redis
// (and Prefix) notifies each broken connection once in all, and reads the
// token saved after a reconnect.
//
// # How each decision stays atomic
//
// Each key is one Redis hash, and each method that decides something is one
// Lua script run with EVALSHA (EVAL when the server does not have it yet):
// Redis runs a script alone, so the stale check, the start of an episode and
// the grant of the notification lease in MarkReauth, and the compare-and-set
// on IssuedAt with the superseded list in SaveToken, each happen as one step
// that no other client can interleave with. Every script touches one key, so
// the Store works on Redis Cluster too.
//
// # Data
//
// The hash at Prefix+key (default "finchreauth:<connection id>", or
// "finchreauth:fp:<fingerprint>") has the fields:
//
//	conn   connection id
//	nr     "1" while the key needs re-authentication
//	ep     episode id
//	since  start of the episode, microseconds since the Unix epoch
//	ntf    "1" once the episode's notification succeeded
//	lease  end of the notification lease, microseconds (absent: none)
//	tok    the access token, sealed if a Sealer is set
//	fp     finchreauth.Fingerprint of the token (saved, or named by a MarkReauth)
//	iat    the token's IssuedAt, microseconds
//	sup    fingerprints of replaced tokens, newest first, space-separated
//
// Keys do not expire. Configure Redis to persist (AOF or RDB) if it holds
// the only copy of your tokens: a Redis that keeps nothing on disk loses
// them on restart.
//
// # Sealing
//
// With Store.Sealer set (tokenseal.NewAESGCM), the tok field holds only
// sealed tokens, bound to their connection id.
package redisstore

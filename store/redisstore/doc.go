// Package redisstore is a finchreauth.Store in Redis, on
// github.com/redis/go-redis/v9, that several processes can share: every
// replica of an application that points its Transport at the same Redis
// (and Prefix) notifies each broken connection once in all, and reads the
// token saved after a reconnect.
//
// # How exactly-once holds
//
// The Transport decides (who starts an episode, who holds the notification
// lease, which token wins) by reading a record with Get and writing it back
// with Put, a compare-and-set on the record's Version. Each Put is one Lua
// script, run with EVALSHA (EVAL when the server does not have it yet), and
// Redis runs a script alone: the check of the Version, the new hash, both
// indexes and the fingerprint keys change in one step that no other client
// can come between. Of any number of Puts from one read, exactly one
// succeeds; the others get finchreauth.ErrConflict, having changed
// nothing, and the Transport reads again. List is one script too, so each record it returns
// is as it was in the index at that moment.
//
// # Keys
//
// Every key starts with the Prefix (default "finchreauth:") and the Redis
// Cluster hash tag {finchreauth}:
//
//	<prefix>{finchreauth}:rec:<connection id>  hash: the record
//	<prefix>{finchreauth}:fp:<fingerprint>     string: the connection id (Lookup)
//	<prefix>{finchreauth}:since                sorted set: the records whose Since is set
//	<prefix>{finchreauth}:due                  sorted set: the records whose Due is set
//	<prefix>{finchreauth}:all                  sorted set: every record, each at score 0
//	<prefix>{finchreauth}:plaintext            set: the records whose token is in plaintext
//	<prefix>{finchreauth}:schema               string: the layout's version (Migrate)
//
// A record's hash has the fields version, token (sealed if sealed is
// "1"), since and due (microseconds since the Unix epoch), data (the
// Transport's bytes, as given) and fingerprints (each as its length, a
// colon and its bytes); a field that would be empty is absent. A
// fingerprint key is written by every Put that lists the fingerprint and
// never deleted. In the sorted sets the score is the time in microseconds
// and the member the connection id: Redis orders equal scores by the
// members' bytes, as Go orders strings, which is the order List returns;
// the index of every record gives each the score 0, so that List of
// Query.Every reads it in connection id order from its cursor
// (ZRANGE BYLEX from "(" and the cursor's id).
// A score holds microseconds exactly for times between the years 1685 and
// 2255; Put refuses a Since or Due outside them.
//
// Keys do not expire. Configure Redis to persist (AOF or RDB) if it holds
// the only copy of your tokens: a Redis that keeps nothing on disk loses
// them on restart.
//
// # Redis Cluster
//
// Because of the hash tag, all the keys of one Store are in one slot, so
// each script may touch any of them: on a Cluster, one Store lives on one
// shard (and its replicas). A Store holds one small record per connection,
// which one shard serves easily. To put two Stores on different shards,
// give their Prefixes hash tags of their own ("app1:{app1}:"): Redis
// hashes the first tag in a key.
//
// # Sealing
//
// Tokens are stored in plaintext unless Store.Sealer is set: anyone who
// can read the Redis keyspace, its backups or its replication stream can
// then call Finch with them. Set a Sealer (tokenseal.NewAESGCM, with a key
// kept outside Redis): the token field then holds only sealed values,
// bound to their connection id, and the record's sealed field says so. A
// Store without a Sealer fails to read a sealed token, rather than return
// the sealed bytes. A Store with a Sealer fails to read a token stored in
// plaintext, which anyone who can write to Redis could have put there,
// until Migrate seals it: to turn sealing on, set the Sealer in every
// replica and call Migrate. Get of such a record fails; List returns it in
// its place with only its id, its time and Record.Err set, so that a listing
// goes on past it.
//
// To rotate keys, deploy tokenseal.NewAESGCM(newKey, oldKey) to every
// replica, call Store.Reseal, which seals every token again under newKey,
// check with Store.Verify that none is left under oldKey, then deploy
// tokenseal.NewAESGCM(newKey).
//
// # Evicted records
//
// Configure Redis with maxmemory-policy noeviction: under allkeys-lru, Redis
// may evict a record's hash while the sorted sets still name it. List then returns the entry in its place with Record.Err set (the
// Transport reports it to its ErrorHandler and goes on), and Get returns
// finchreauth.ErrNotFound: the token is lost, and the Transport's next write
// of the connection, at Version 0, writes a new record and its index
// entries.
//
// # Migration
//
// Store.Migrate converts the keys that earlier versions of this package
// wrote (one hash per connection, without the hash tag) to this layout,
// adds the records written before the index of every record existed to it,
// and records the layout's version; with a Sealer, it seals the tokens
// stored in plaintext. Run it at start-up, from every replica if
// convenient, before the Transport uses the Store.
package redisstore

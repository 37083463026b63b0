package redisstore

import "github.com/redis/go-redis/v9"

// The scripts are immutable once built; go-redis runs them with EVALSHA and
// falls back to EVAL on NOSCRIPT. Redis runs a script alone: no other
// client's command comes between two of its commands.

// putScript is Put's compare-and-set. KEYS: the record's hash, the since
// index, the due index, the plaintext set, the index of every record, then
// a key per fingerprint.
// ARGV: the expected version, the connection id, the token, "1" if the
// token is sealed, since and due (microseconds; "" for none), the data,
// the encoded fingerprints. An empty value deletes its field. Returns the
// new version, or 0 when the stored one (0 when there is none) is not the
// expected one: then it has changed nothing.
var putScript = redis.NewScript(`
local rec, since, due, plain, all = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[2]
if (redis.call('HGET', rec, 'version') or '0') ~= ARGV[1] then
	return 0
end
local set, del = {}, {}
local fields = {'token', 'sealed', 'since', 'due', 'data', 'fingerprints'}
for i, f in ipairs(fields) do
	local v = ARGV[2 + i]
	if v == '' then
		del[#del + 1] = f
	else
		set[#set + 1] = f
		set[#set + 1] = v
	end
end
if #del > 0 then redis.call('HDEL', rec, unpack(del)) end
if #set > 0 then redis.call('HSET', rec, unpack(set)) end
local version = redis.call('HINCRBY', rec, 'version', 1)
redis.call('ZADD', all, 0, id)
for i, index in ipairs({since, due}) do
	local at = ARGV[4 + i]
	if at == '' then
		redis.call('ZREM', index, id)
	else
		redis.call('ZADD', index, at, id)
	end
end
if ARGV[3] ~= '' and ARGV[4] == '' then
	redis.call('SADD', plain, id)
else
	redis.call('SREM', plain, id)
end
for i = 6, #KEYS do
	redis.call('SET', KEYS[i], id)
end
return version
`)

// sealScript seals a token stored in plaintext, if it still is. KEYS: the
// record's hash, the plaintext set. ARGV: the connection id, the token as
// read, the token sealed. The Version stays: the record holds the same
// token. Returns 1 if it sealed the token.
var sealScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'token', 'sealed')
if f[1] ~= ARGV[2] or f[2] == '1' then
	return 0
end
redis.call('HSET', KEYS[1], 'token', ARGV[3], 'sealed', '1')
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`)

// resealScript writes a token sealed again, if the record still holds the
// token read at the version read. KEYS: the record's hash, the plaintext
// set. ARGV: the connection id, the version read, the token read, the token
// sealed again. The Version stays: the record holds the same token. Returns
// 1 if it wrote the token.
var resealScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'version', 'token')
if f[1] ~= ARGV[2] or f[2] ~= ARGV[3] then
	return 0
end
redis.call('HSET', KEYS[1], 'token', ARGV[4], 'sealed', '1')
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`)

// listEveryScript is List of every record (Query.Every). KEYS[1]: the index
// of every record, a sorted set whose members all have the score 0, so that
// Redis orders them by their bytes, as Go orders strings. ARGV: the prefix
// of the records' keys, the connection id to list after ("" to start), the
// limit. Returns, as listScript does, the connection id, an empty score and
// the hash of each record, in order.
var listEveryScript = redis.NewScript(`
local index, rec, after, limit = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local from = '-'
if after ~= '' then from = '(' .. after end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', index, from, '+', 'BYLEX', 'LIMIT', 0, limit)) do
	out[#out + 1] = id
	out[#out + 1] = ''
	out[#out + 1] = redis.call('HGETALL', rec .. id)
end
return out
`)

// indexAllScript adds to the index of every record the connections named
// whose hash exists: Migrate's, for records written before the index was.
// KEYS[1]: the index of every record. ARGV: the prefix of the records' keys,
// then the connection ids. Returns how many it added.
var indexAllScript = redis.NewScript(`
local added = 0
for i = 2, #ARGV do
	if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 1 then
		added = added + redis.call('ZADD', KEYS[1], 0, ARGV[i])
	end
end
return added
`)

// listScript is List. KEYS[1]: the index (since or due). ARGV: the prefix
// of the records' keys, the lowest and highest scores (as ZRANGE takes
// them), a score at ("" for none), a connection id, the limit. Returns the
// records at score at whose id sorts after the given one, then those from
// lowest to highest score, at most limit in all: the connection id, the
// score and the hash (as HGETALL answers it, empty if the hash is gone) of
// each, in order.
//
// A sorted set orders equal scores by their members' bytes, as Go orders
// strings, so the records after a cursor (a time and an id) are those at
// its time whose id sorts after its id, then those at later times. Lua's
// string comparison follows the server's locale: above compares bytes.
//
// The records' keys are not in KEYS (the index names them), but they are
// in the index's slot, which Redis Cluster allows.
var listScript = redis.NewScript(`
local index, rec, lo, hi, at, after, limit = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local function above(a, b)
	for i = 1, math.min(#a, #b) do
		local x, y = string.byte(a, i), string.byte(b, i)
		if x ~= y then return x > y end
	end
	return #a > #b
end
local ids, scores = {}, {}
if at ~= '' then
	for _, id in ipairs(redis.call('ZRANGE', index, at, at, 'BYSCORE')) do
		if #ids == limit then break end
		if above(id, after) then
			ids[#ids + 1] = id
			scores[#ids] = at
		end
	end
end
if #ids < limit then
	local got = redis.call('ZRANGE', index, lo, hi, 'BYSCORE', 'LIMIT', 0, limit - #ids, 'WITHSCORES')
	for i = 1, #got, 2 do
		ids[#ids + 1] = got[i]
		scores[#ids] = got[i + 1]
	end
end
local out = {}
for i, id in ipairs(ids) do
	out[#out + 1] = id
	out[#out + 1] = scores[i]
	out[#out + 1] = redis.call('HGETALL', rec .. id)
end
return out
`)

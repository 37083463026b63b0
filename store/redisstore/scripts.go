package redisstore

import "github.com/redis/go-redis/v9"

// The scripts are immutable once built; go-redis runs them with EVALSHA and
// falls back to EVAL on NOSCRIPT.

// markScript decides MarkReauth. KEYS[1]: the hash. ARGV: connection id,
// token fingerprint, episode, At and LeaseUntil (microseconds; "" for the
// zero time). Returns {"stale"} or {outcome, episode, since, notified} where
// outcome is "start" (Transitioned and Notify), "lease" (Notify) or "none".
// Times are compared as numbers: microseconds of any date between 1685 and
// 2255 are exact in Lua's doubles.
var markScript = redis.NewScript(`
local h = KEYS[1]
local conn, fp, episode, at, until_ = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local f = redis.call('HMGET', h, 'nr', 'ntf', 'lease', 'conn', 'sup', 'fp')
if fp ~= '' and f[5] and string.find(' ' .. f[5] .. ' ', ' ' .. fp .. ' ', 1, true) then
	return {'stale'}
end
local outcome = 'none'
if f[1] ~= '1' then
	redis.call('HSET', h, 'nr', '1', 'ep', episode, 'since', at, 'ntf', '0')
	outcome = 'start'
elseif f[2] ~= '1' and (not f[3] or f[3] == '' or at == '' or tonumber(f[3]) <= tonumber(at)) then
	outcome = 'lease'
end
if outcome ~= 'none' then
	if until_ == '' then
		redis.call('HDEL', h, 'lease')
	else
		redis.call('HSET', h, 'lease', until_)
	end
end
if (not f[4] or f[4] == '') and conn ~= '' then
	redis.call('HSET', h, 'conn', conn)
end
-- A key that knows no token takes the marked one's fingerprint, so that
-- the SaveToken ending the episode supersedes it.
if (not f[6] or f[6] == '') and fp ~= '' then
	redis.call('HSET', h, 'fp', fp)
end
local r = redis.call('HMGET', h, 'ep', 'since', 'ntf')
return {outcome, r[1] or '', r[2] or '', r[3] or '0'}
`)

// notifiedScript is MarkNotified. KEYS[1]: the hash. ARGV[1]: the episode.
var notifiedScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'nr', 'ep')
if f[1] == '1' and f[2] == ARGV[1] then
	redis.call('HSET', KEYS[1], 'ntf', '1')
	redis.call('HDEL', KEYS[1], 'lease')
end
return 1
`)

// saveScript is SaveToken's compare-and-set. KEYS[1]: the hash. ARGV:
// connection id, token (sealed or not), fingerprint, IssuedAt
// (microseconds, "" for the zero time), how many superseded fingerprints to keep. Returns
// {"stale"}, or {"new"} when the key did not exist, or {"ok", the previous
// state's fields as stateFields lists them}; the previous token itself is
// never returned.
var saveScript = redis.NewScript(`
local h = KEYS[1]
local conn, tok, fp, iat, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local p = redis.call('HMGET', h, 'conn', 'nr', 'ep', 'since', 'ntf', 'lease', 'fp', 'iat', 'sup')
local exists = redis.call('EXISTS', h) == 1
local oldfp = p[7] or ''
-- "" is the zero time, before every other.
local function num(t) if not t or t == '' then return -math.huge end return tonumber(t) end
if oldfp ~= '' and num(p[8]) > num(iat) then
	return {'stale'}
end
local sup = {}
if oldfp ~= '' and oldfp ~= fp then
	table.insert(sup, oldfp)
end
for s in string.gmatch(p[9] or '', '%S+') do
	if #sup >= keep then break end
	if s ~= fp and s ~= oldfp then table.insert(sup, s) end
end
redis.call('DEL', h)
redis.call('HSET', h, 'conn', conn, 'tok', tok, 'fp', fp, 'iat', iat, 'sup', table.concat(sup, ' '))
if not exists then
	return {'new'}
end
for i = 1, 9 do
	if not p[i] then p[i] = '' end
end
return {'ok', p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]}
`)

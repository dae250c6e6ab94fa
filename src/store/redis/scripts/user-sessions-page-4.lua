--[[
  user-sessions-page-4.lua — the index entries of one page of a user's sessions, newest last write first.

  KEYS[1]  the user's session index (zset, score = lastUpdated ms)
  KEYS[2]  the user's expiry index (zset, score = expiresAt ms)
  KEYS[3]  the tenant's activity index
  KEYS[4]  the tenant's expiry index
  ARGV[1]  page size + 1 (one more than asked, to tell whether there is a next page)
  ARGV[2]  the cursor's score (ms), or "" for the first page
  ARGV[3]  how many expired entries to drop at most before counting

  First drops the index entries of sessions that have expired (their keys are gone), so totalCount is exact.
  Returns  {totalCount, ties, member1, score1, member2, score2, …}: from the cursor's score downwards (inclusive),
           `ties` + ARGV[1] entries. `ties` counts the entries that share the cursor's score: the caller skips those
           it has already shown (Redis orders equal scores by member bytes, which the caller compares; Lua's string
           comparison follows the server's locale, so it is not used here).

  The sessions themselves are not read here: a script may touch only the keys it declares, and a page's session
  keys are known only once the index is read. An earlier version read them with GET all the same (they share the
  slot); Redis Cluster refuses that while the slot migrates and those keys are on the other master. The caller
  reads the page's sessions with one MGET (split per key while a migration splits them): two round trips.
]]

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local expired = redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
  redis.call('ZREM', KEYS[4], member)
end

local total = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[1])
local entries, ties
if ARGV[2] == '' then
  ties = 0
  entries = redis.call('ZRANGE', KEYS[1], '+inf', '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, limit, 'WITHSCORES')
else
  ties = redis.call('ZCOUNT', KEYS[1], ARGV[2], ARGV[2])
  entries = redis.call('ZRANGE', KEYS[1], ARGV[2], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, ties + limit, 'WITHSCORES')
end

table.insert(entries, 1, ties)
table.insert(entries, 1, total)
return entries

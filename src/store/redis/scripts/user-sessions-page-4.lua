--[[
  user-sessions-page-4.lua — one page of a user's sessions, newest last write first.

  KEYS[1]  the user's session index (zset, score = lastUpdated ms)
  KEYS[2]  the user's expiry index (zset, score = expiresAt ms)
  KEYS[3]  the tenant's activity index
  KEYS[4]  the tenant's expiry index
  ARGV[1]  page size + 1 (one more than asked, to tell whether there is a next page)
  ARGV[2]  the cursor's score (ms), or "" for the first page
  ARGV[3]  how many expired entries to drop at most before counting
  ARGV[4]  the user's session key prefix (keys.ts userSessionKeyPrefix): a member `<user>:<session>` has its
           session at `ARGV[4] .. <session>` (escaped ids hold no `:`). These keys share KEYS[1]'s hash slot.

  First drops the index entries of sessions that have expired (their keys are gone), so totalCount is exact.
  Returns  {totalCount, ties, member1, score1, document1, member2, score2, document2, …}: from the cursor's score
           downwards (inclusive), `ties` + ARGV[1] entries with their session documents (false when the key expired
           in between), so a page is one round trip. `ties` counts the entries that share the cursor's score: the
           caller skips those it has already shown (Redis orders equal scores by member bytes, which the caller
           compares; Lua's string comparison follows the server's locale, so it is not used here).
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

local reply = {total, ties}
for i = 1, #entries, 2 do
  local member = entries[i]
  local colon = string.find(member, ':', 1, true)
  reply[#reply + 1] = member
  reply[#reply + 1] = entries[i + 1]
  reply[#reply + 1] = redis.call('GET', ARGV[4] .. string.sub(member, colon + 1))
end
return reply

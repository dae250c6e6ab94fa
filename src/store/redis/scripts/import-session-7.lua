--[[
  import-session-7.lua — write one session exactly as given (the data tool's import and legacy migration), with its
  index entries, its change log and its live-update announcement, atomically: a session is either written whole or
  not at all.

  KEYS[1]   the session key
  KEYS[2]   the tenant's settings hash (historyDepth, cleanupIntervalSeconds, scheduled)
  KEYS[3]   the tenant's activity index (zset, score = lastUpdated ms)
  KEYS[4]   the tenant's expiry index (zset, score = expiresAt ms)
  KEYS[5]   the user's session index (zset, score = lastUpdated ms)
  KEYS[6]   the user's expiry index (zset, score = expiresAt ms)
  KEYS[7]   the session's change log (list, newest first)
  ARGV[1]   "skip": leave a session that is there alone; "overwrite": replace it; "newer": replace it only when
            this one was written later (lastUpdated, then version)
  ARGV[2]   the document (session-document.ts layout, with its spans trailer), written as it is
  ARGV[3]   its version
  ARGV[4]   its lastUpdated (ms)
  ARGV[5]   when the key expires (epoch ms), or "0": ARGV[6] ms from now
  ARGV[6]   remaining TTL in ms, when ARGV[5] is "0"
  ARGV[7]   the session's index member (keys.ts indexMember)
  ARGV[8]   historyDepth, when the tenant has not set it: at most this many entries are kept
  ARGV[9]   cleanupIntervalSeconds, when the tenant has not set it
  ARGV[10]  the user's change channel (keys.ts changeChannel)
  ARGV[11]  the announcement's change: the four context fields, as a store's change
  ARGV[12…] the change log entries, newest first (history-entry.ts layout), contiguous down from ARGV[3]

  Returns  {status, scheduleNeeded, cleanupIntervalSeconds}: scheduleNeeded is "1" when the tenant has no cleanup
           scheduled yet (the caller schedules it: the schedule key lives in another slot), as write-session-7.lua
           answers; it comes with every status but EXPIRED, so a run that failed between a write and the schedule
           puts the tenant on it when it is run again
           status "WRITTEN"    written
                   "UNCHANGED" the same version with the same context is there already: nothing written (this is
                               what makes a second import of the same file change nothing)
                   "EXISTS"    "skip", and another state of the session is there: nothing written
                   "NOT_NEWER" "newer", and the session there was written as late or later: nothing written
                   "EXPIRED"   the expiry has passed: nothing written
           (the caller names these in redis-scripts.ts: ImportStatus)

  The announcement is a store's (`U`, member, STORE, change, document; src/live/session-change.ts), so a live
  subscriber sees an imported session as a store of it; only a written session is announced.
  No cjson: the document and entries are the tool's canonical JSON text and are stored as they are.
]]

local mode = ARGV[1]
local document = ARGV[2]
local version = tonumber(ARGV[3])
local last_updated = tonumber(ARGV[4])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local expires_at = tonumber(ARGV[5])
if expires_at == 0 then expires_at = now + tonumber(ARGV[6]) end
if expires_at <= now then return {'EXPIRED', '0', '0'} end

local settings = redis.call('HMGET', KEYS[2], 'historyDepth', 'cleanupIntervalSeconds', 'scheduled')
local history_depth = tonumber(settings[1] or ARGV[8])
local cleanup_interval = settings[2] or ARGV[9]
local schedule_needed = settings[3] and '0' or '1'

local current = redis.call('GET', KEYS[1])
if current then
  local v, l = string.match(current, '^{"version":(%d+),"storedAt":%d+,"lastUpdated":(%d+),')
  v, l = tonumber(v), tonumber(l)
  -- Same version and the same context (everything from conversationState on, spans included): already there.
  local at = string.find(current, ',"conversationState":', 1, true)
  local given_at = string.find(document, ',"conversationState":', 1, true)
  if v == version and at and string.sub(current, at) == string.sub(document, given_at) then
    return {'UNCHANGED', schedule_needed, cleanup_interval}
  end
  if mode == 'skip' then return {'EXISTS', schedule_needed, cleanup_interval} end
  if mode == 'newer' and v and (l > last_updated or (l == last_updated and v >= version)) then
    return {'NOT_NEWER', schedule_needed, cleanup_interval}
  end
end

redis.call('SET', KEYS[1], document, 'PXAT', expires_at)
local member = ARGV[7]
redis.call('ZADD', KEYS[3], last_updated, member)
redis.call('ZADD', KEYS[4], expires_at, member)
redis.call('ZADD', KEYS[5], last_updated, member)
redis.call('ZADD', KEYS[6], expires_at, member)

redis.call('DEL', KEYS[7])
local entries = math.min(#ARGV - 11, history_depth)
if entries > 0 then
  redis.call('RPUSH', KEYS[7], unpack(ARGV, 12, 11 + entries))
  redis.call('PEXPIREAT', KEYS[7], expires_at)
end

-- Announced only when a server process follows this user's channel: the message is a copy of the whole document.
if redis.call('PUBSUB', 'SHARDNUMSUB', ARGV[10])[2] > 0 then
  redis.call('SPUBLISH', ARGV[10], 'U\n' .. member .. '\nSTORE\n' .. ARGV[11] .. '\n' .. document)
end
return {'WRITTEN', schedule_needed, cleanup_interval}

--[[
  delete-sessions.lua — delete sessions of one tenant, their change logs and their index entries, atomically per
  call. Called with a variable number of keys (numkeys = 2 + 4 × number of sessions), all in the tenant's hash slot.

  KEYS[1]          the tenant's activity index (zset, score = lastUpdated ms)
  KEYS[2]          the tenant's expiry index (zset, score = expiresAt ms)
  KEYS[4i-1..4i+2] for session i (i = 1..n): its session key, its user's session index, its user's expiry index,
                   its change log
  ARGV[1]          "idle": only sessions whose last write is before ARGV[2] (ms) — orphan cleanup;
                   "expired": only sessions whose expiry is at or before ARGV[2] (ms) — index repair;
                   "any": every named session — explicit deletes
  ARGV[2]          the cut-off in ms (ignored for "any")
  ARGV[2 + i]      the index member of session i (i = 1..n)
  ARGV[2 + n + i]  the change channel of session i's user (keys.ts changeChannel): a deleted session is announced
                   there as `D`, its member, the version it had and the time, one per line
                   (src/live/session-change.ts); an expired one ("expired", or a key already gone) is not

  Returns  {deleted, dropped}: sessions whose key this call deleted, and index entries removed for sessions
           whose key had already expired. A session written again since it was chosen no longer matches the
           condition and is left alone, so a purge never deletes a session that just became active.
]]

local mode = ARGV[1]
local cutoff = tonumber(ARGV[2])
local deleted, dropped = 0, 0
local n = (#KEYS - 2) / 4
local now = nil

for i = 1, n do
  local member = ARGV[2 + i]
  local eligible = mode == 'any'
  if mode == 'idle' then
    local score = redis.call('ZSCORE', KEYS[1], member)
    eligible = score and tonumber(score) < cutoff
  elseif mode == 'expired' then
    local score = redis.call('ZSCORE', KEYS[2], member)
    eligible = score and tonumber(score) <= cutoff
  end
  if eligible then
    local base = 4 * i - 1
    -- The header alone (the version is its first field), not a copy of a context of up to MAX_CONTEXT_BYTES.
    local header = redis.call('GETRANGE', KEYS[base], 0, 31)
    if header ~= '' then
      redis.call('DEL', KEYS[base])
      deleted = deleted + 1
      if not now then
        local clock = redis.call('TIME')
        now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
      end
      local version = string.match(header, '^{"version":(%d+),') or '0'
      redis.call('SPUBLISH', ARGV[2 + n + i], 'D\n' .. member .. '\n' .. version .. '\n' .. string.format('%.0f', now))
    else
      dropped = dropped + 1
    end
    redis.call('DEL', KEYS[base + 3]) -- erasure means erasure: the log goes with the session
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[base + 1], member)
    redis.call('ZREM', KEYS[base + 2], member)
  end
end

return {deleted, dropped}

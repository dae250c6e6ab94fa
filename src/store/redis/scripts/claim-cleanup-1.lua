--[[
  claim-cleanup-1.lua — claim one due cleanup run of a tenant (compare-and-set on its due time).

  KEYS[1]  the cleanup schedule (zset: tenant id → next due time in ms)
  ARGV[1]  the tenant id
  ARGV[2]  the due time the caller saw (ms)
  ARGV[3]  the next due time to set (ms)

  Returns 1 when this caller moved the due time (it owns this run), 0 when another replica already did.
]]
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return 1

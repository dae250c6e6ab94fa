--[[
  server-time-1.lua — the clock of the node that owns a key's slot.

  KEYS[1]  any key (never read): it only routes the call. On a Cluster, the node owning the key's slot answers, so
           a tenant's clock is the clock its write script stamps `lastUpdated` with; on one Redis it is TIME.
  Returns  {seconds, microseconds}, as TIME does.
]]
local clock = redis.call('TIME')
return { clock[1], clock[2] }

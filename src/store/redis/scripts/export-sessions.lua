--[[
  export-sessions.lua — read sessions of one tenant for an export: each one's document, its remaining TTL and its
  change log, in one step, so that the log always belongs to the document beside it (a write between separate
  reads would shift the log under it). Called with a variable number of keys (numkeys = 2 × number of sessions),
  all in the tenant's hash slot.

  KEYS[2i-1]  session i's key (i = 1..n)
  KEYS[2i]    session i's change log

  Returns  {now, session…}   now: the node's clock (epoch ms, as text); then per session either
                             {pttl, document, entry…} (entries newest first) or {} when the session is gone
                             (expired or deleted since its index entry was read)
]]

local clock = redis.call('TIME')
local reply = { string.format('%.0f', tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)) }
for i = 1, #KEYS / 2 do
  local document = redis.call('GET', KEYS[2 * i - 1])
  if document then
    local session = redis.call('LRANGE', KEYS[2 * i], 0, -1)
    table.insert(session, 1, document)
    table.insert(session, 1, redis.call('PTTL', KEYS[2 * i - 1]))
    reply[#reply + 1] = session
  else
    reply[#reply + 1] = {}
  end
end
return reply

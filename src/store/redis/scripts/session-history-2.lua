--[[
  session-history-2.lua — a session's document and the entries of its change log that one page of its history
  needs, in one step, so that they agree (a write between two separate reads would shift the log under the
  document).

  KEYS[1]   the session key
  KEYS[2]   the session's change log (list, newest first, one entry per version down from the current one; see
            write-session-7.lua)
  ARGV[1]   the page starts below this version ("0": from the newest)
  ARGV[2]   the page's size

  Returns  {document, entry…}   newest first: every entry from the newest to the page's last, and one more when
                                there is one (it tells that another page follows; the caller works each version's
                                context back from the document through every newer entry)
           {}                   the session does not exist
]]

local document = redis.call('GET', KEYS[1])
if not document then return {} end
local version = tonumber(string.match(document, '^{"version":(%d+),'))
local after, first = tonumber(ARGV[1]), tonumber(ARGV[2])
local skip = 0
if after > 0 then skip = math.max(0, version - after + 1) end
local reply = redis.call('LRANGE', KEYS[2], 0, skip + first)
table.insert(reply, 1, document)
return reply

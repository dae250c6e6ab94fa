--[[
  write-session-7.lua — store (replace), merge or restore one session context, its index entries and its change
  log entry, atomically.

  KEYS[1]   the session key
  KEYS[2]   the tenant's settings hash (defaultTtlSeconds, maxInterruptedQueries, maxRecentInteractions,
            cleanupIntervalSeconds, scheduled, historyDepth)
  KEYS[3]   the tenant's activity index (zset, score = lastUpdated ms)
  KEYS[4]   the tenant's expiry index (zset, score = expiresAt ms)
  KEYS[5]   the user's session index (zset, score = lastUpdated ms)
  KEYS[6]   the user's expiry index (zset, score = expiresAt ms)
  KEYS[7]   the session's change log (list of entries, newest first; layout in src/history/history-entry.ts)
  ARGV[1]   "store", "merge" or "restore" (a store of the fields given, logged as RESTORE with ARGV[18] as its change)
  ARGV[2]   conversationState JSON object text, or "" when not given
  ARGV[3]   interruptedQueries JSON array text, or ""
  ARGV[4]   number of entries in ARGV[3]
  ARGV[5]   recentInteractions JSON array text, or ""
  ARGV[6]   number of entries in ARGV[5]
  ARGV[7]   userPreferences JSON object text, or ""
  ARGV[8]   ttlSeconds to set, or "0": keep the session's own TTL setting, else ARGV[9]
  ARGV[9]   default TTL in seconds, when the tenant has not set defaultTtlSeconds
  ARGV[10]  expectedVersion, or "-1" for none (an absent session has version 0)
  ARGV[11]  largest allowed sum of the four context fields' byte lengths (MAX_CONTEXT_BYTES less the JSON frame)
  ARGV[12]  maxInterruptedQueries, when the tenant has not set it
  ARGV[13]  maxRecentInteractions, when the tenant has not set it
  ARGV[14]  the session's index member (see keys.ts indexMember)
  ARGV[15]  cleanupIntervalSeconds, when the tenant has not set it
  ARGV[16]  the writer, as the JSON members `"actor":<user id>,"roles":[…]` of the log entry
  ARGV[17]  historyDepth, when the tenant has not set it: versions kept in the log (0: no log)
  ARGV[18]  the log entry's change for a restore (`{"restoredVersion":n}`); "" otherwise
  ARGV[19]  the user's change channel (keys.ts changeChannel): the write is announced there with SPUBLISH
  ARGV[20]  the entry index of ARGV[2]: `keyBytes,valueBytes,…` of each top-level entry in order ("" for none)
  ARGV[21]  the entry index of ARGV[7], the same way
  ARGV[22]  the most top-level keys an object field may have after a merge (MAX_OBJECT_KEYS)

  Returns  {"OK", document, scheduleNeeded, cleanupIntervalSeconds}
                                       the new document, also written with SET … EX ttl; scheduleNeeded is "1"
                                       when the tenant has no cleanup scheduled yet (the caller schedules it in
                                       the cross-tenant schedule key, which lives in another slot)
           {"CONFLICT", storedVersion} expectedVersion differed; nothing written (no log entry either)
           {"TOO_LARGE", fieldBytes}   the context would exceed the limit; nothing written
           {"TOO_MANY_KEYS", field, n} a merge would leave the object field `field` with n > ARGV[22] top-level keys;
                                       nothing written
           (the caller names these replies in redis-scripts.ts: WriteSessionStatus, FirstCleanup)

  The announcement (src/live/session-change.ts, the wire format) is `U`, the index member, the operation, the
  change and the new document, one per line: JSON text has no raw line breaks and ids no control characters. It is
  published in the same atomic step as the write, so subscribers see the writes of one session in version order.
  Sharded pub/sub: the channel carries the tenant's hash tag, so on a Cluster it stays on this shard.

  Why text and not cjson: Redis's cjson keeps 14 significant digits and turns [] into {}. The document is
  canonical JSON.stringify output (no white space; layout in session-document.ts), so this script finds value
  boundaries with a small scanner and splices values as text. User values are never decoded or re-encoded.
  Two object keys are equal exactly when their JSON texts are, because JSON.stringify escapes canonically.

  Why the "spans" trailer: the document ends in ,"spans":[csBytes,iqBytes,iqCount,riBytes,riCount]} — the byte
  lengths of conversationState, interruptedQueries and recentInteractions and the entry counts of the two lists
  (userPreferences ends where the trailer starts). A merge slices the four fields at those offsets and takes the
  counts as they are, instead of scanning the whole stored document for value boundaries: on 1.7 KB documents that
  cut a merge of two state keys and one interaction from 73 to 39 µs of Redis CPU, an empty merge from 51 to 24 µs
  (a store costs 22; an 18.6 KB session at the 100-interaction cap: 680 to 155 µs; README, Redis layout). The spans
  are trusted only when the separators sit exactly where they say; otherwise, and for documents written before
  the trailer existed (they end in }}, never ]}), the scanner finds the fields as it always did. A script without
  this code still reads a document with the trailer: it scans up to userPreferences and never looks further.

  Why the "entries" index: Redis runs one script at a time, so a write's Redis time is every tenant's latency. A
  merge of an object needs its top-level entries, and finding them by scanning costs time per key and per bracket
  and quote inside the values (8,000 keys: ~21 ms; one value of 60,000 empty objects: tens of ms). So the document
  also carries, before the spans, `"entries":"<conversationState index>;<userPreferences index>"`: for each
  top-level entry in order, the byte lengths of its key text and value text (`k,v,k,v,…`); the spans then end
  with a sixth number, the byte length of that index. The patch comes with its index too (ARGV[20], ARGV[21],
  made by the caller as it serializes), and an object field holds at most ARGV[22] keys, so a merge slices at
  most that many entries on each side and never scans a value. An index whose lengths do not add up to its
  field's length is not trusted (the field is scanned, once). Documents with five spans have no index: their
  objects are scanned on their next merge, which writes one.
]]

local QUOTE, BACKSLASH, LBRACE, RBRACE, LBRACKET, RBRACKET, COLON, COMMA = 34, 92, 123, 125, 91, 93, 58, 44
local sub, byte, find = string.sub, string.byte, string.find

-- Index of the closing quote of the JSON string that opens at i.
local function string_end(s, i)
  local p = i + 1
  while true do
    local q = find(s, '["\\]', p)
    if byte(s, q) == QUOTE then return q end
    p = q + 2 -- skip the escaped character; the hex digits of \uXXXX are never special
  end
end

-- Index of the last character of the JSON value that starts at i.
local function value_end(s, i)
  local c = byte(s, i)
  if c == QUOTE then return string_end(s, i) end
  if c == LBRACE or c == LBRACKET then
    local depth, p = 0, i
    while true do
      p = find(s, '[%[%]{}"]', p)
      c = byte(s, p)
      if c == QUOTE then
        p = string_end(s, p) + 1
      elseif c == LBRACE or c == LBRACKET then
        depth = depth + 1
        p = p + 1
      else
        depth = depth - 1
        if depth == 0 then return p end
        p = p + 1
      end
    end
  end
  local q = find(s, '[,%]}]', i) -- number, true, false, null
  return (q or (#s + 1)) - 1
end

-- Top-level entries of a JSON object text, in order: key texts (with quotes) and value texts.
local function object_entries(s)
  local keys, values = {}, {}
  if s == '{}' then return keys, values end
  local p = 2
  while true do
    local key_end = string_end(s, p)
    local value_start = key_end + 2
    local last = value_end(s, value_start)
    keys[#keys + 1] = sub(s, p, key_end)
    values[#values + 1] = sub(s, value_start, last)
    if byte(s, last + 1) == RBRACE then return keys, values end
    p = last + 2
  end
end

-- Walks an entry index (`k,v,k,v,…`: byte lengths of each key text and value text) over the object text `s`, without
-- looking at the values: true when every entry is where the index puts it ("key":value followed by , or }) and the
-- index adds up to the object's length. With `keys` and `values`, also collects the key and value texts.
local function walk_index(s, index, keys, values)
  if index == '' then return s == '{}' end
  local p = 2
  for kl, vl in string.gmatch(index, '(%d+),(%d+)') do
    kl, vl = tonumber(kl), tonumber(vl)
    local after = byte(s, p + kl + vl + 1)
    if byte(s, p) ~= QUOTE or byte(s, p + kl - 1) ~= QUOTE or byte(s, p + kl) ~= COLON
      or (after ~= COMMA and after ~= RBRACE) then
      return false
    end
    if keys then
      keys[#keys + 1] = sub(s, p, p + kl - 1)
      values[#values + 1] = sub(s, p + kl + 1, p + kl + vl)
    end
    p = p + kl + vl + 2
  end
  return p - 1 == #s
end

-- The same as object_entries from an entry index; nil when the index does not fit the object.
local function indexed_entries(s, index)
  local keys, values = {}, {}
  if not walk_index(s, index, keys, values) then return nil end
  return keys, values
end

-- Whether `index` fits the object text `s` (no copies): an index carried over for a field the write leaves as it is.
local function index_fits(s, index)
  return walk_index(s, index, nil, nil)
end

-- Entries of an object field, by its index when it has a good one, else by scanning.
local function entries_of(s, index)
  local keys, values
  if index then keys, values = indexed_entries(s, index) end
  if not keys then keys, values = object_entries(s) end
  return keys, values
end

-- The entry index of entries given as key and value texts.
local function index_of(keys, values)
  local parts = {}
  for i = 1, #keys do parts[i] = #keys[i] .. ',' .. #values[i] end
  return table.concat(parts, ',')
end

-- Shallow merge, like {...old, ...patch} in JavaScript: old keys keep their place, new keys go last. Also returns
-- what the merge replaced, for the change log: `[key,oldValue]` for each merged key that was there, `[key]` for each
-- new one (history-entry.ts, ObjectUndo).
-- Takes and returns each object with its entry index (nil: unknown, found by scanning); the last result is the
-- merged object's number of keys.
local function merge_objects(old, old_index, patch, patch_index)
  local patch_keys, patch_values = entries_of(patch, patch_index)
  local undo = {}
  if #patch_keys == 0 then
    local old_keys, old_values = entries_of(old, old_index)
    return old, '[]', index_of(old_keys, old_values), #old_keys
  end
  if old == '{}' then
    for i = 1, #patch_keys do undo[i] = '[' .. patch_keys[i] .. ']' end
    return patch, '[' .. table.concat(undo, ',') .. ']', index_of(patch_keys, patch_values), #patch_keys
  end
  local pending = {}
  for i = 1, #patch_keys do pending[patch_keys[i]] = patch_values[i] end
  local old_keys, old_values = entries_of(old, old_index)
  local parts, index = {}, {}
  for i = 1, #old_keys do
    local k = old_keys[i]
    local v = pending[k]
    if v then
      pending[k] = nil
      undo[#undo + 1] = '[' .. k .. ',' .. old_values[i] .. ']'
    else
      v = old_values[i]
    end
    parts[#parts + 1] = k .. ':' .. v
    index[#index + 1] = #k .. ',' .. #v
  end
  for i = 1, #patch_keys do
    local k = patch_keys[i]
    if pending[k] then
      parts[#parts + 1] = k .. ':' .. pending[k]
      index[#index + 1] = #k .. ',' .. #pending[k]
      undo[#undo + 1] = '[' .. k .. ']'
    end
  end
  return '{' .. table.concat(parts, ',') .. '}', '[' .. table.concat(undo, ',') .. ']', table.concat(index, ','),
    #parts
end

-- Number of elements of a JSON array text.
local function array_length(s)
  if s == '[]' then return 0 end
  local n, p = 0, 2
  while true do
    local last = value_end(s, p)
    n = n + 1
    if byte(s, last + 1) == RBRACKET then return n end
    p = last + 2
  end
end

-- The JSON array text `list` (count entries) without its oldest entries beyond cap, and those entries as a JSON
-- array text.
local function newest(list, count, cap)
  if count <= cap then return list, '[]' end
  local p = 2
  for _ = 1, count - cap do p = value_end(list, p) + 2 end
  return '[' .. sub(list, p), sub(list, 1, p - 2) .. ']'
end

-- Appends `added` (count entries) to `old` (old_count entries), keeping the newest cap entries of the whole
-- list. Returns the list, its number of entries, and the log's undo for it: `[oldCount,[entries of old dropped]]`
-- (history-entry.ts, ListUndo).
local function append_newest(old, old_count, added, count, cap)
  local total = math.min(old_count + count, cap)
  if count >= cap then
    local list = newest(added, count, cap)
    return list, total, '[' .. old_count .. ',' .. old .. ']'
  end
  local kept, dropped = newest(old, old_count, cap - count)
  local undo = '[' .. old_count .. ',' .. dropped .. ']'
  if kept == '[]' then return added, total, undo end
  if count == 0 then return kept, total, undo end
  return sub(kept, 1, -2) .. ',' .. sub(added, 2), total, undo
end

local SEP_IQ, SEP_RI, SEP_UP = ',"interruptedQueries":', ',"recentInteractions":', ',"userPreferences":'

-- The four context fields of `doc`, whose conversationState starts at p, sliced at the offsets its spans trailer
-- gives, with the two lists' counts; nil when there is no trailer or anything does not line up.
local ENTRIES = ',"entries":"'

local function fields_by_spans(doc, p)
  -- The spans are at most a few dozen bytes: look only at the end (a pattern is tried at every start position).
  local t, cs_len, iq_len, iq_n, ri_len, ri_n, e_len =
    string.match(doc, '(),"spans":%[(%d+),(%d+),(%d+),(%d+),(%d+),?(%d*)%]}$', -140)
  if not t then return nil end
  -- userPreferences ends right before the entry index, or before the spans when there is none.
  local up_end, cs_index, up_index = t - 1, nil, nil
  if e_len ~= '' then
    local e_at = t - tonumber(e_len) - 1
    if sub(doc, e_at - #ENTRIES, e_at - 1) ~= ENTRIES or byte(doc, t - 1) ~= QUOTE then return nil end
    cs_index, up_index = string.match(sub(doc, e_at, t - 2), '^([%d,]*);([%d,]*)$')
    if not cs_index then return nil end
    up_end = e_at - #ENTRIES - 1
  end
  local iq_at = p + tonumber(cs_len) + #SEP_IQ
  local ri_at = iq_at + tonumber(iq_len) + #SEP_RI
  local up_at = ri_at + tonumber(ri_len) + #SEP_UP
  if up_at > up_end
    or sub(doc, iq_at - #SEP_IQ, iq_at - 1) ~= SEP_IQ
    or sub(doc, ri_at - #SEP_RI, ri_at - 1) ~= SEP_RI
    or sub(doc, up_at - #SEP_UP, up_at - 1) ~= SEP_UP
    or byte(doc, p) ~= LBRACE or byte(doc, iq_at - #SEP_IQ - 1) ~= RBRACE
    or byte(doc, iq_at) ~= LBRACKET or byte(doc, ri_at - #SEP_RI - 1) ~= RBRACKET
    or byte(doc, ri_at) ~= LBRACKET or byte(doc, up_at - #SEP_UP - 1) ~= RBRACKET
    or byte(doc, up_at) ~= LBRACE or byte(doc, up_end) ~= RBRACE then
    return nil
  end
  return sub(doc, p, iq_at - #SEP_IQ - 1), sub(doc, iq_at, ri_at - #SEP_RI - 1), tonumber(iq_n),
    sub(doc, ri_at, up_at - #SEP_UP - 1), tonumber(ri_n), sub(doc, up_at, up_end), cs_index, up_index
end

-- The same by scanning every value: documents without a (consistent) trailer.
local function fields_by_scanning(doc, p)
  local last = value_end(doc, p)
  local cs = sub(doc, p, last)
  p = last + 1 + #SEP_IQ
  last = value_end(doc, p)
  local iq = sub(doc, p, last)
  p = last + 1 + #SEP_RI
  last = value_end(doc, p)
  local ri = sub(doc, p, last)
  p = last + 1 + #SEP_UP
  last = value_end(doc, p)
  return cs, iq, array_length(iq), ri, array_length(ri), sub(doc, p, last)
end

local key = KEYS[1]
local mode = ARGV[1]
local ttl = tonumber(ARGV[8])
local expected = tonumber(ARGV[10])
local member = ARGV[14]

local settings = redis.call('HMGET', KEYS[2], 'defaultTtlSeconds', 'maxInterruptedQueries', 'maxRecentInteractions',
  'cleanupIntervalSeconds', 'scheduled', 'historyDepth')
local default_ttl = tonumber(settings[1] or ARGV[9])
local max_interrupted = tonumber(settings[2] or ARGV[12])
local max_recent = tonumber(settings[3] or ARGV[13])
local cleanup_interval = settings[4] or ARGV[15]
local history_depth = tonumber(settings[6] or ARGV[17])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local version, stored_at, old_ttl = 0, now, nil
local cs, iq, ri, up = '{}', '[]', '[]', '{}'
local iq_count, ri_count = 0, 0
local cs_index, up_index = '', '' -- nil: not known (a document without the entry index)

local current = redis.call('GET', key)
if current then
  local v, s, t, p = string.match(current,
    '^{"version":(%d+),"storedAt":(%d+),"lastUpdated":%d+,"ttlSeconds":(%d+),"conversationState":()')
  if not v then return redis.error_reply('ERR session document at ' .. key .. ' has an unknown layout') end
  version, stored_at, old_ttl = tonumber(v), tonumber(s), tonumber(t)
  -- A merge needs the stored fields; a logged store or restore records them as what it replaced.
  if mode == 'merge' or history_depth > 0 then
    cs, iq, iq_count, ri, ri_count, up, cs_index, up_index = fields_by_spans(current, p)
    if not cs then
      cs, iq, iq_count, ri, ri_count, up = fields_by_scanning(current, p)
      cs_index, up_index = nil, nil
    end
  end
end

if expected >= 0 and expected ~= version then
  return {'CONFLICT', tostring(version)}
end

-- The log entry's change (what the write was given) and undo (what it replaced): history-entry.ts.
local change, undo
if mode == 'merge' then
  local given, replaced = {}, {}
  local field_undo, keys
  local max_keys = tonumber(ARGV[22])
  if ARGV[2] ~= '' then
    cs, field_undo, cs_index, keys = merge_objects(cs, cs_index, ARGV[2], ARGV[20])
    if keys > max_keys then return {'TOO_MANY_KEYS', 'conversationState', tostring(keys)} end
    given[#given + 1] = '"conversationState":' .. ARGV[2]
    replaced[#replaced + 1] = '"conversationState":' .. field_undo
  end
  if ARGV[3] ~= '' then
    iq, iq_count, field_undo = append_newest(iq, iq_count, ARGV[3], tonumber(ARGV[4]), max_interrupted)
    given[#given + 1] = '"interruptedQueries":' .. ARGV[3]
    replaced[#replaced + 1] = '"interruptedQueries":' .. field_undo
  end
  if ARGV[5] ~= '' then
    ri, ri_count, field_undo = append_newest(ri, ri_count, ARGV[5], tonumber(ARGV[6]), max_recent)
    given[#given + 1] = '"recentInteractions":' .. ARGV[5]
    replaced[#replaced + 1] = '"recentInteractions":' .. field_undo
  end
  if ARGV[7] ~= '' then
    up, field_undo, up_index, keys = merge_objects(up, up_index, ARGV[7], ARGV[21])
    if keys > max_keys then return {'TOO_MANY_KEYS', 'userPreferences', tostring(keys)} end
    given[#given + 1] = '"userPreferences":' .. ARGV[7]
    replaced[#replaced + 1] = '"userPreferences":' .. field_undo
  end
  change = '{' .. table.concat(given, ',') .. '}'
  undo = '{' .. table.concat(replaced, ',') .. '}'
else
  if current then
    undo = '{"replaced":{"conversationState":' .. cs .. ',"interruptedQueries":' .. iq
      .. ',"recentInteractions":' .. ri .. ',"userPreferences":' .. up .. '}}'
  else
    undo = '{"created":true}'
  end
  if mode == 'restore' then
    change = ARGV[18]
  else
    change = '{"conversationState":' .. ARGV[2] .. ',"interruptedQueries":' .. ARGV[3]
      .. ',"recentInteractions":' .. ARGV[5] .. ',"userPreferences":' .. ARGV[7] .. '}'
  end
  cs, up = ARGV[2], ARGV[7]
  cs_index, up_index = ARGV[20], ARGV[21]
  iq_count = tonumber(ARGV[4])
  iq, iq_count = newest(ARGV[3], iq_count, max_interrupted), math.min(iq_count, max_interrupted)
  ri_count = tonumber(ARGV[6])
  ri, ri_count = newest(ARGV[5], ri_count, max_recent), math.min(ri_count, max_recent)
end

-- A field this write left as it was: its index as it was if that fits, else (a document without one) found once.
if not (cs_index and index_fits(cs, cs_index)) then cs_index = index_of(object_entries(cs)) end
if not (up_index and index_fits(up, up_index)) then up_index = index_of(object_entries(up)) end

local field_bytes = #cs + #iq + #ri + #up
if field_bytes > tonumber(ARGV[11]) then
  return {'TOO_LARGE', tostring(field_bytes)}
end

if ttl == 0 then ttl = old_ttl or default_ttl end

local document = string.format('{"version":%d,"storedAt":%.0f,"lastUpdated":%.0f,"ttlSeconds":%d,', version + 1, stored_at, now, ttl)
  .. '"conversationState":' .. cs
  .. ',"interruptedQueries":' .. iq
  .. ',"recentInteractions":' .. ri
  .. ',"userPreferences":' .. up
  .. ENTRIES .. cs_index .. ';' .. up_index .. '"'
  .. string.format(',"spans":[%d,%d,%d,%d,%d,%d]}', #cs, #iq, iq_count, #ri, ri_count,
    #cs_index + 1 + #up_index)
redis.call('SET', key, document, 'EX', ttl)
local expires_at = now + ttl * 1000
redis.call('ZADD', KEYS[3], now, member)
redis.call('ZADD', KEYS[4], expires_at, member)
redis.call('ZADD', KEYS[5], now, member)
redis.call('ZADD', KEYS[6], expires_at, member)

-- The log holds the newest history_depth versions, one after the other down from the current one: a session that
-- is new (or expired, or was deleted) starts a new log, and with history off the log goes.
local operation = mode == 'merge' and 'MERGE' or (mode == 'restore' and 'RESTORE' or 'STORE')
if not current or history_depth == 0 then redis.call('DEL', KEYS[7]) end
if history_depth > 0 then
  redis.call('LPUSH', KEYS[7], string.format('{"version":%d,"at":%.0f,"operation":"%s",', version + 1, now, operation)
    .. ARGV[16] .. string.format(',"ttlSeconds":%d,"change":', ttl) .. change .. ',"undo":' .. undo .. '}')
  redis.call('LTRIM', KEYS[7], 0, history_depth - 1)
  redis.call('PEXPIREAT', KEYS[7], expires_at)
end
redis.call('SPUBLISH', ARGV[19], 'U\n' .. member .. '\n' .. operation .. '\n' .. change .. '\n' .. document)
return {'OK', document, settings[5] and '0' or '1', cleanup_interval}

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
  ARGV[19]  the user's change channel (keys.ts changeChannel): the write is announced there with SPUBLISH, when a server
            process follows it (PUBSUB SHARDNUMSUB)
  ARGV[20]  the entry index of ARGV[2]: `keyBytes,valueBytes,…` of each top-level entry in order ("" for none)
  ARGV[21]  the entry index of ARGV[7], the same way
  ARGV[22]  the most top-level keys an object field may have after a merge (MAX_OBJECT_KEYS)
  ARGV[23]  "header": the reply's document is only its header, `{"version":…,"storedAt":…,"lastUpdated":…,"ttlSeconds":…,`
            (the caller's answer selects no context field: a merge into a large context sends nothing large back);
            anything else: the whole document
  ARGV[24]  the entry index of ARGV[3]: the byte length of each entry text in order, 8 digits each ("" for none)
  ARGV[25]  the entry index of ARGV[5], the same way

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
  A store whose change is the context it leaves (no list entries dropped by a cap) announces `null` for its change,
  and its log entry has none (history-entry.ts): receivers take it from the document, readers from the version's
  context. Sending the context twice made a full store over a full one with history on the costliest write there
  was (README, Overload and noisy neighbours).
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

  The lists have an entry index too, after the objects': `"entries":"<cs index>;<up index>;<iq index>;<ri index>"`,
  a list's index being the byte length of each entry text in order, each in 8 decimal digits with no separator
  (ARGV[24], ARGV[25] for the given lists). A list cap drops the oldest entries; finding where the kept ones start
  by scanning the dropped ones cost time per bracket (1,000 entries of ~230 KB of brackets stored at a cap of 100:
  ~19 ms). With the index, dropping n entries is adding up the first n lengths and cutting the index at n * 8, and
  appending is joining two indexes: no entry is looked at, and no length beyond the dropped ones is read (a list
  may hold 10,000 entries; reading 10,000 lengths costs ~1.4 ms here, which is why they are not comma-separated
  numbers like the objects': the index's length gives their count, and its end the last one). A stored list's index
  is not even read whole: the counts in the spans say where each list's starts, and a write reads its last length,
  the dropped ones and the part it keeps (GETRANGE), each once. In a document over 16 KB the same goes for the list
  itself: an append reads the entries the cap drops and, in one piece that goes into the new document as it is, the
  ones it keeps (append_stored). An index is trusted when it has one length per entry and the last entry is where
  it says; each dropped entry is checked to end where its length says (at a `,`). One that does not fit is not
  trusted (the list is scanned, once). Documents written
  before (two indexes in "entries") have their lists scanned on their next merge, which writes their index; a script
  from before, given a document with four, finds no trailer it knows and scans the whole document (README, Redis
  layout).
]]

local QUOTE, LBRACE, RBRACE, LBRACKET, RBRACKET, COLON, COMMA = 34, 123, 125, 91, 93, 58, 44
local sub, byte, find, format = string.sub, string.byte, string.find, string.format

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

--[[
  Text is built from pieces. Creating a Lua string costs Redis more than anything else this script does: each new
  string is copied and hashed byte by byte (this Redis hashes every byte of a string, ~2 ns per byte here, 0.5 ms for
  256 KB), and table.concat builds long strings through an 8 KB buffer whose flushed chunks it joins pairwise, so it
  copies and hashes a 256 KB result several times over (~1 ms measured, ~2.4 ms from 500-byte pieces). So the script
  slices each stored or given value at most once, keeps results as lists of pieces, and makes a long string only
  where Redis needs one argument: the change log entry and the announcement, each joined in a single step. The
  document itself is written with SET and APPEND of its parts (copies inside Redis, no Lua string).
]]

-- Appends the strings of `pieces` to `out`, small neighbours joined into parts of at most GROUP bytes (one step of
-- table.concat, which stays in its 8 KB buffer), longer ones as they are.
local SMALL, GROUP = 2048, 8000
local function parts_of(pieces, out)
  local group, grouped, size, n_out = {}, 0, 0, #out
  local function close()
    if grouped == 1 then
      n_out = n_out + 1; out[n_out] = group[1]
    elseif grouped > 1 then
      n_out = n_out + 1; out[n_out] = table.concat(group, '', 1, grouped)
    end
    grouped, size = 0, 0
  end
  for i = 1, #pieces do
    local piece = pieces[i]
    local n = #piece
    if n >= SMALL then
      close()
      n_out = n_out + 1; out[n_out] = piece
    elseif n > 0 then
      if size + n > GROUP then close() end
      grouped = grouped + 1; group[grouped] = piece
      size = size + n
    end
  end
  close()
  return out
end

-- The strings t[i], …, t[i + 63] (missing ones empty) as one string: a single concatenation, copied once.
local function join64(t, i)
  local a = {}
  for k = 1, 64 do a[k] = t[i + k - 1] or '' end
  return
    a[1] .. a[2] .. a[3] .. a[4] .. a[5] .. a[6] .. a[7] .. a[8] ..
    a[9] .. a[10] .. a[11] .. a[12] .. a[13] .. a[14] .. a[15] .. a[16] ..
    a[17] .. a[18] .. a[19] .. a[20] .. a[21] .. a[22] .. a[23] .. a[24] ..
    a[25] .. a[26] .. a[27] .. a[28] .. a[29] .. a[30] .. a[31] .. a[32] ..
    a[33] .. a[34] .. a[35] .. a[36] .. a[37] .. a[38] .. a[39] .. a[40] ..
    a[41] .. a[42] .. a[43] .. a[44] .. a[45] .. a[46] .. a[47] .. a[48] ..
    a[49] .. a[50] .. a[51] .. a[52] .. a[53] .. a[54] .. a[55] .. a[56] ..
    a[57] .. a[58] .. a[59] .. a[60] .. a[61] .. a[62] .. a[63] .. a[64]
end

-- The parts (from parts_of) as one string. Up to 64 parts (a 256 KB context makes about 40) are copied once.
local function join(parts)
  while #parts > 64 do
    local joined = {}
    for i = 1, #parts, 64 do joined[#joined + 1] = join64(parts, i) end
    parts = joined
  end
  return join64(parts, 1)
end

-- Appends the values of each list to `out`.
local function append(out, ...)
  for _, list in ipairs({...}) do
    for i = 1, #list do out[#out + 1] = list[i] end
  end
  return out
end

--[[
  Objects. An object field is held as the string `s` in which its text runs from `first` to the end (a stored
  field is read together with the JSON member name before it, so that unchanged it is a piece of the new document
  as it is). Its entries are found by its entry index when that fits, else by scanning once.
]]

-- Walks an entry index (`k,v,k,v,…`: byte lengths of each key text and value text) over the object text
-- s[first..#s], without looking at the values: true when every entry is where the index puts it ("key":value
-- followed by , or }) and the index adds up to the object's length. With `e`, also collects each entry's key text,
-- key position, value position and value length (and its two index numbers as text: e.kl, e.vl), e.n of them.
local function walk_index(s, first, index, e)
  if byte(s, first) ~= LBRACE then return false end
  if index == '' then return #s == first + 1 and byte(s, #s) == RBRACE end
  local p, n = first + 1, 0
  for kt, vt in string.gmatch(index, '(%d+),(%d+)') do
    local kl, vl = tonumber(kt), tonumber(vt)
    local after = byte(s, p + kl + vl + 1)
    if kl < 2 or byte(s, p) ~= QUOTE or byte(s, p + kl - 1) ~= QUOTE or byte(s, p + kl) ~= COLON
      or (after ~= COMMA and after ~= RBRACE) then
      return false
    end
    if e then
      n = n + 1
      e.keys[n], e.kp[n], e.vp[n], e.vlen[n], e.kl[n], e.vl[n] = sub(s, p, p + kl - 1), p, p + kl + 1, vl, kt, vt
    end
    p = p + kl + vl + 2
  end
  if e then e.n = n end
  return p - 1 == #s
end

-- The entry index of the object text s[first..#s], by scanning it: documents without one, or one that does not fit.
local function scan_index(s, first)
  if byte(s, first + 1) == RBRACE then return '' end
  local parts, p = {}, first + 1
  while true do
    local key_end = string_end(s, p)
    local last = value_end(s, key_end + 2)
    parts[#parts + 1] = (key_end - p + 1) .. ',' .. (last - key_end - 1)
    if byte(s, last + 1) == RBRACE then return table.concat(parts, ',') end
    p = last + 2
  end
end

-- The entries of the object text s[first..#s] and its (good) index.
local function entries_of(s, first, index)
  local e = {keys = {}, kp = {}, vp = {}, vlen = {}, kl = {}, vl = {}, n = 0}
  if index and walk_index(s, first, index, e) then return e, index end
  index = scan_index(s, first)
  e = {keys = {}, kp = {}, vp = {}, vlen = {}, kl = {}, vl = {}, n = 0}
  walk_index(s, first, index, e)
  return e, index
end

--[[
  A field of a large stored document may be left unread (fields_by_spans): then it is a table {key, start, first,
  last}, the document positions (1-based, as Lua counts) of its JSON member name, its opening and its closing bracket,
  whose parts `cut` reads. A write reads of it only what it
  needs — an object's key texts, a list's kept and dropped entries — and each part that goes into the new document
  as it is read: a field read whole and then sliced was copied into Lua twice, each byte hashed each time.
]]
local function stored_field(key, from, to, sep) -- from, to: 0-based, as GETRANGE counts
  return {key = key, start = from + 1, first = from + #sep + 1, last = to + 1}
end

-- Characters i..j of `s`: a string, or a stored field (i, j its document positions).
local function cut(s, i, j)
  if type(s) == 'string' then return sub(s, i, j) end
  return redis.call('GETRANGE', s.key, i - 1, j - 1)
end

-- The position of the last character of `s` (its closing bracket), a string or a stored field.
local function last_of(s)
  return type(s) == 'string' and #s or s.last
end

-- The text of old[name], read whole if it was left unread.
local function field_text(old, name)
  local s = old[name]
  if type(s) == 'table' then
    s = cut(s, s.start, s.last)
    old[name] = s
  end
  return s
end

-- entries_of for an object field left unread (a stored field with few entries), by its index: each key text read
-- with the separator before it and the colon after it, checked as walk_index checks them. Nil when the index does not
-- fit (or is empty): the caller reads the field whole.
local function entries_stored(f, index)
  local e = {keys = {}, kp = {}, vp = {}, vlen = {}, kl = {}, vl = {}, n = 0}
  local p, n = f.first + 1, 0
  for kt, vt in string.gmatch(index, '(%d+),(%d+)') do
    local kl, vl = tonumber(kt), tonumber(vt)
    if kl < 2 then return nil end
    local t = cut(f, p - 1, p + kl)
    if #t ~= kl + 2 or byte(t, 1) ~= (n == 0 and LBRACE or COMMA) or byte(t, 2) ~= QUOTE or byte(t, kl + 1) ~= QUOTE
      or byte(t, kl + 2) ~= COLON then
      return nil
    end
    n = n + 1
    e.keys[n], e.kp[n], e.vp[n], e.vlen[n], e.kl[n], e.vl[n] = sub(t, 2, kl + 1), p, p + kl + 1, vl, kt, vt
    p = p + kl + vl + 2
  end
  if n == 0 or p - 1 ~= f.last then return nil end
  e.n = n
  return e
end

-- Plans a shallow merge, like {...old, ...patch} in JavaScript (old keys keep their place, new keys go last), from
-- the entries alone: the merged object's number of keys and byte length, checked before anything is built. `old_s`
-- is the stored field's text or, left unread, the stored field (then nil when its index does not fit).
local function plan_merge(old_s, old_first, old_index, patch, patch_index)
  local old
  if type(old_s) == 'string' then
    old = entries_of(old_s, old_first, old_index)
  else
    old = old_index and entries_stored(old_s, old_index)
    if not old then return nil end
  end
  local new = entries_of(patch, 1, patch_index)
  local at = {} -- key text → its (last) entry in the patch
  for j = 1, new.n do at[new.keys[j]] = j end
  local replaced, taken = {}, {}
  local bytes, count = last_of(old_s) - old_first + 1, old.n
  for i = 1, old.n do
    local j = at[old.keys[i]]
    if j then
      replaced[i], taken[j] = j, true
      bytes = bytes - old.vlen[i] + new.vlen[j]
    end
  end
  local added = {}
  for j = 1, new.n do
    if not taken[j] and at[new.keys[j]] == j then
      added[j] = true
      count = count + 1
      bytes = bytes + (count > 1 and 1 or 0) + #new.keys[j] + 1 + new.vlen[j]
    end
  end
  return {old_s = old_s, old_first = old_first, old = old, patch = patch, new = new, replaced = replaced,
    added = added, count = count, bytes = bytes}
end

-- Builds a planned merge: the merged object's text as pieces, its entry index, and what the merge replaced for the
-- change log (history-entry.ts, ObjectUndo): the replaced entries as they were, as pieces of a JSON object, and the
-- key texts of the entries it added, joined by commas. Each run of entries that lie next to each other in one text
-- is one slice of it: untouched old entries, and patch entries that follow each other in the patch (replacing old
-- neighbours, or new), since a key's text is the same in both; so are the replaced old entries that lie next to
-- each other. A merge whose result is its patch as it is (it replaces every key, in the stored order) takes the
-- patch itself.
local function build_merge(m)
  local old, new, old_s, patch = m.old, m.new, m.old_s, m.patch
  -- Plain counters rather than #t: the length of a table is a binary search in Lua 5.1.
  local pieces, np, undo, nu, added, na, index, ni = {'{'}, 1, {'{'}, 1, {}, 0, {}, 0
  local segments = 0
  local run_kind, run_s, run_from, run_to, run_next -- the run being gathered: 'old' or 'patch'
  local function flush()
    if run_kind then
      if segments > 0 then np = np + 1; pieces[np] = ',' end
      np = np + 1; pieces[np] = cut(run_s, run_from, run_to)
      segments, run_kind = segments + 1, nil
    end
  end
  local function from_patch(j)
    if run_kind ~= 'patch' or run_next ~= j then flush() end
    if not run_kind then run_kind, run_s, run_from = 'patch', patch, new.kp[j] end
    run_to, run_next = new.vp[j] + new.vlen[j] - 1, j + 1
  end
  local undo_from, undo_to -- the run of replaced old entries being gathered
  local undo_whole -- whether one run of replaced entries is the whole stored object
  local function flush_undo()
    if undo_from then
      undo_whole = undo_from == m.old_first + 1 and undo_to == last_of(old_s) - 1
      if nu > 1 then nu = nu + 1; undo[nu] = ',' end
      nu = nu + 1; undo[nu] = cut(old_s, undo_from, undo_to)
      undo_from = nil
    end
  end
  for i = 1, old.n do
    local j = m.replaced[i]
    if j then
      from_patch(j)
      undo_from, undo_to = undo_from or old.kp[i], old.vp[i] + old.vlen[i] - 1
      index[ni + 1], index[ni + 2], ni = old.kl[i], new.vl[j], ni + 2
    else
      flush_undo()
      if run_kind ~= 'old' then flush() end
      if not run_kind then run_kind, run_s, run_from = 'old', old_s, old.kp[i] end
      run_to = old.vp[i] + old.vlen[i] - 1
      index[ni + 1], index[ni + 2], ni = old.kl[i], old.vl[i], ni + 2
    end
  end
  flush_undo()
  for j = 1, new.n do
    if m.added[j] then
      from_patch(j)
      if na > 0 then na = na + 1; added[na] = ',' end
      na = na + 1; added[na] = new.keys[j]
      index[ni + 1], index[ni + 2], ni = new.kl[j], new.vl[j], ni + 2
    end
  end
  if segments == 0 and run_kind == 'patch' and run_from == 2 and run_to == #patch - 1 then
    pieces = {patch}
  else
    flush()
    pieces[np + 1] = '}'
  end
  if nu == 2 and undo_whole then
    -- Every stored entry replaced: the undo is the stored field as it is, its JSON member name (and for
    -- userPreferences the comma before it) in front.
    local whole = type(old_s) == 'string' and old_s or cut(old_s, old_s.start, old_s.last)
    return pieces, table.concat(index, ','), {whole}, added, true
  end
  undo[nu + 1] = '}'
  return pieces, table.concat(index, ','), undo, added, false
end

--[[
  Lists: held like objects, the array text running from `first` to the end of `s`, with their entry index: the byte
  length of each entry text in order, each written in LIST_WIDTH decimal digits (zero-padded, no separator), so
  that the index's length tells how many entries it has and the lengths of the first n entries are its first
  n * LIST_WIDTH characters. An entry is at most MAX_CONTEXT_BYTES long (64 MiB at most: 8 digits).
]]
local LIST_WIDTH = 8

-- A list's entry index as something to read parts of (n characters; part(i, j) is characters i..j): a text the
-- script has (given, or found by scanning), or a stored one read where needed (index_at), so that a long index
-- (80 KB for 10,000 entries) is copied into Lua only as the part the new document keeps.
local function index_text(text)
  return {n = #text, part = function(i, j)
    if i == 1 and j >= #text then return text end
    return sub(text, i, j)
  end}
end

-- Skips the oldest `drop` entries of the array text s[first..#s] by its entry index, checking that each ends where
-- the index says (followed by `,`, or by the closing bracket at the end): the position of the first entry kept (of
-- the closing bracket + 1 when none is); nil when the index does not fit.
local function skip_indexed(s, first, index, drop)
  local p, lengths = first + 1, drop > 0 and index.part(1, drop * LIST_WIDTH) or ''
  for i = 1, drop do
    local l = tonumber(sub(lengths, (i - 1) * LIST_WIDTH + 1, i * LIST_WIDTH))
    if not l or l < 1 then return nil end
    p = p + l + 1
    local after = byte(s, p - 1)
    if after ~= COMMA and not (after == RBRACKET and p - 1 == #s) then return nil end
  end
  return p
end

-- The entry index of the array text s[first..#s], by scanning it: lists without one, or one that does not fit.
local function scan_list_index(s, first)
  if byte(s, first + 1) == RBRACKET then return '' end
  local parts, p = {}, first + 1
  while true do
    local last = value_end(s, p)
    parts[#parts + 1] = format('%08d', last - p + 1)
    if byte(s, last + 1) == RBRACKET then return table.concat(parts) end
    p = last + 2
  end
end

-- The entry index of the list s[first..#s] (count entries): `index` when it fits where that costs nothing to check
-- (one length per entry, and the last entry where it says; the entries a cap drops are checked as they are
-- dropped), else found by scanning.
local function list_index(s, first, count, index)
  if index and index.n == LIST_WIDTH * count then
    if count == 0 then
      if #s == first + 1 then return index end
    else
      local l = tonumber(index.part(index.n - LIST_WIDTH + 1, index.n))
      local before = l and byte(s, #s - l - 1)
      if (before == COMMA and count > 1) or (before == LBRACKET and count == 1 and #s - l - 1 == first) then
        return index
      end
    end
  end
  return index_text(scan_list_index(s, first))
end

-- The first entry of s[first..#s] left after dropping its oldest `drop` entries, by `index` (list_index) or, when
-- that does not fit, by a new one found by scanning; with the index of the entries left, as text.
local function drop_oldest(s, first, index, drop)
  local kept = skip_indexed(s, first, index, drop)
  if not kept then
    index = index_text(scan_list_index(s, first))
    kept = skip_indexed(s, first, index, drop)
  end
  return kept, index.part(drop * LIST_WIDTH + 1, index.n)
end

-- The array text `list` (count entries, `index` its checked index) as pieces without its oldest entries beyond cap,
-- its byte length and count, and its index as text.
local function newest(list, count, cap, index)
  if count <= cap then return {list}, #list, count, index.part(1, index.n) end
  local p, kept_index = drop_oldest(list, 1, index, count - cap)
  return {'[', sub(list, p)}, #list - p + 2, cap, kept_index
end

-- Appends `added` (count entries, `added_index` its checked index) to the stored list s[first..#s] (old_count
-- entries, `old_index` its index as stored or nil), keeping the newest cap entries of the whole list. Returns the
-- list as pieces, its byte length, its number of entries, the log's undo for it as pieces,
-- `[oldCount,[entries of old dropped]]` (history-entry.ts, ListUndo), and the new list's index as pieces.
local function append_newest(s, first, old_count, old_index, added, count, added_index, cap)
  local total = math.min(old_count + count, cap)
  if count >= cap then
    local pieces, bytes, _, index = newest(added, count, cap, added_index)
    return pieces, bytes, total, {'[' .. old_count .. ',', sub(s, first), ']'}, {index}
  end
  local drop = math.max(0, old_count - (cap - count))
  -- The first entry kept, or the closing bracket; the index of the entries kept.
  local kept, kept_index = drop_oldest(s, first, list_index(s, first, old_count, old_index), drop)
  local undo = drop == 0 and {'[' .. old_count .. ',[]]'}
    or {'[' .. old_count .. ',[', sub(s, first + 1, kept - 2), ']]'}
  if kept == #s then return {added}, #added, total, undo, {added_index.part(1, added_index.n)} end
  if count == 0 then
    if drop == 0 then return {sub(s, first)}, #s - first + 1, total, undo, {kept_index} end
    return {'[', sub(s, kept)}, #s - kept + 2, total, undo, {kept_index}
  end
  return {'[', sub(s, kept, #s - 1), ',', sub(added, 2)}, (#s - kept) + #added + 1, total, undo,
    {kept_index, added_index.part(1, added_index.n)}
end

--[[
  Reading the stored document. Only the parts this write needs are copied into Lua, each once (GETRANGE): the
  header, the spans trailer and the entry index (small), then each context field together with the JSON member name
  before it — in a document over 16 KB, a list and an object of few entries only as far as the write needs them
  (stored_field). Those four are where the spans trailer puts them, which is trusted only when every name and bracket
  is where it should be; otherwise (and for documents written before the trailer) the whole document is read and
  scanned.
]]

local SEP_CS, SEP_IQ, SEP_RI, SEP_UP = '"conversationState":', ',"interruptedQueries":', ',"recentInteractions":',
  ',"userPreferences":'
local ENTRIES = ',"entries":"'

-- Bytes first..last (0-based, inclusive, as GETRANGE counts) of the document at `key`, of length `len`. A small
-- document is read whole once and sliced: for it, one GET costs less than the several GETRANGE calls.
local SMALL_DOCUMENT = 16384
local whole
local function range(key, len, first, last)
  if len <= SMALL_DOCUMENT then
    whole = whole or redis.call('GET', key)
    return sub(whole, first + 1, last + 1)
  end
  return redis.call('GETRANGE', key, first, last)
end

-- A field text s = name .. value, checked: the name, then a value opening with `open` and closing with `close`.
local function field_fits(s, name, open, close)
  return s and #s > #name + 1 and sub(s, 1, #name) == name and byte(s, #name + 1) == open and byte(s, #s) == close
end

-- The four fields of the document at `key` (length len, conversationState's name at position p), as
-- {cs, iq, ri, up} strings that each start with the field's name, the lists' counts, and the entry indexes (the
-- lists' nil in a document written before they had one); nil when there is no consistent trailer.
local function fields_by_spans(key, len, p)
  local tail_at = math.max(0, len - 160) -- 0-based offset of the tail: the spans are at most a few dozen bytes
  local tail = range(key, len, tail_at, len - 1)
  local t, cs_len, iq_len, iq_n, ri_len, ri_n, e_len =
    string.match(tail, '(),"spans":%[(%d+),(%d+),(%d+),(%d+),(%d+),?(%d*)%]}$')
  if not t then return nil end
  t = tail_at + t -- the document position of the trailer
  local up_end, cs_index, up_index, iq_index, ri_index = t - 1, nil, nil, nil, nil
  if e_len ~= '' then
    e_len = tonumber(e_len)
    local e_at = t - e_len - 1 -- the document position of the index's first character
    up_end = e_at - #ENTRIES - 1
    -- `<cs>;<up>;<iq>;<ri>`: the lists' indexes take 8 characters per entry, so the objects' part ends where the
    -- counts say; only it is read here, and the lists' where they are used (a list's may be 80 KB).
    local o = e_len - LIST_WIDTH * (tonumber(iq_n) + tonumber(ri_n)) - 2 -- the objects' part, `<cs>;<up>`
    local text = o > 0 and range(key, len, e_at - #ENTRIES - 1, e_at + o - 1)
    local a = text and find(text, ';', #ENTRIES + 1, true)
    local iq_at = e_at + o + 1
    local ri_at = iq_at + LIST_WIDTH * tonumber(iq_n) + 1
    if a and find(text, ';', a + 1, true) == #text and range(key, len, ri_at - 2, ri_at - 2) == ';'
      and range(key, len, t - 2, t - 2) == '"' then
      cs_index, up_index = sub(text, #ENTRIES + 1, a - 1), sub(text, a + 1, #text - 1)
      local function index_at(at, n)
        return {n = n, part = function(i, j)
          return j < i and '' or range(key, len, at + i - 2, at + math.min(j, n) - 2)
        end}
      end
      iq_index = index_at(iq_at, LIST_WIDTH * tonumber(iq_n))
      ri_index = index_at(ri_at, LIST_WIDTH * tonumber(ri_n))
    else
      -- `<cs>;<up>` (written before the lists had an index), or lists' indexes that do not fit: read whole.
      text = range(key, len, e_at - #ENTRIES - 1, t - 2)
      a = find(text, ';', #ENTRIES + 1, true)
      if not a then return nil end
      cs_index = sub(text, #ENTRIES + 1, a - 1)
      up_index = sub(text, a + 1, (find(text, ';', a + 1, true) or #text) - 1)
    end
    if sub(text, 1, #ENTRIES) ~= ENTRIES or not (find(cs_index, '^[%d,]*$') and find(up_index, '^[%d,]*$')) then
      return nil
    end
  end
  local iq_at = p + #SEP_CS + tonumber(cs_len)
  local ri_at = iq_at + #SEP_IQ + tonumber(iq_len)
  local up_at = ri_at + #SEP_RI + tonumber(ri_len)
  if up_at + #SEP_UP + 1 > up_end then return nil end
  -- A large document's fields are not all read here: a list is left unread (stored_field), and so is an object of at
  -- most 32 entries, 8 KB or more and 1 KB an entry or more. A write that appends to such a list reads the entries it
  -- keeps and those it drops (append_stored), a merge into such an object its key texts and the runs it keeps
  -- (entries_stored, build_merge); any other use reads the field whole, once (field_text). Their names and brackets
  -- are checked now, as field_fits checks a field read whole.
  local lazy = len > SMALL_DOCUMENT
  local f = {iq_n = tonumber(iq_n), ri_n = tonumber(ri_n), cs_index = cs_index, up_index = up_index,
    iq_index = iq_index, ri_index = ri_index}
  for _, field in ipairs({{'cs', SEP_CS, p - 1, iq_at - 2, '{', '}', cs_index},
    {'iq', SEP_IQ, iq_at - 1, ri_at - 2, '[', ']'}, {'ri', SEP_RI, ri_at - 1, up_at - 2, '[', ']'},
    {'up', SEP_UP, up_at - 1, up_end - 1, '{', '}', up_index}}) do
    local name, sep, from, to, open, close, index = field[1], field[2], field[3], field[4], field[5], field[6], field[7]
    -- Reading an object's keys one by one costs a Redis call each; what it saves is a copy of the object (each byte
    -- hashed, ~1.4 ns here): worth it where the entries are large (the bench's 64 KB object: ~2 KB an entry).
    local entries = index and (select(2, string.gsub(index, ',', '')) + 1) / 2
    local few_large = entries and entries <= 32 and to - from + 1 - #sep >= math.max(8192, 1024 * entries)
    if lazy and (open == '[' or few_large) then
      if to - from <= #sep or range(key, len, from, from + #sep) ~= sep .. open or range(key, len, to, to) ~= close then
        return nil
      end
      f[name] = stored_field(key, from, to, sep)
    else
      f[name] = range(key, len, from, to)
      if not field_fits(f[name], sep, byte(open), byte(close)) then return nil end
    end
  end
  return f
end

-- append_newest for a list fields_by_spans left unread, when its stored index is there: reads only the entries the
-- cap drops (the undo records them as they are read) and, in one piece, those it keeps (they go into the new document
-- as they are read). A list read whole and then sliced was copied into Lua twice, each byte hashed each time: merging
-- 99 entries into 100 at the cap (~240 KB dropped) took 1.33–1.36 ms of Redis CPU so, 0.93–1.03 ms this way; one
-- entry into 10,000, 0.66 and 0.55–0.57 ms. It checks what append_newest checks: each dropped entry followed by a
-- comma, the last entry where the index puts it. Nil when it does not apply (nothing appended, the list empty or
-- replaced whole) or the index does not fit: the caller then reads the list whole and takes append_newest's way.
local function append_stored(old, name, added, count, added_index, cap)
  local f, old_count, index = old[name], old[name .. '_n'], old[name .. '_index']
  if type(f) ~= 'table' or not index or count < 1 or count >= cap or old_count < 1
    or index.n ~= LIST_WIDTH * old_count then
    return nil
  end
  local drop = math.max(0, old_count - (cap - count)) -- < old_count: at least one stored entry is kept
  local open = f.first -- the position of the list's `[`
  local lengths, dropped = drop > 0 and index.part(1, drop * LIST_WIDTH) or '', 0
  for i = 1, drop do
    local l = tonumber(sub(lengths, (i - 1) * LIST_WIDTH + 1, i * LIST_WIDTH))
    if not l or l < 1 then return nil end
    dropped = dropped + l + 1
  end
  local last = tonumber(index.part(index.n - LIST_WIDTH + 1, index.n))
  if not last or last < 1 then return nil end
  local kept = cut(f, open + 1 + dropped, f.last - 1) -- without the `]`
  if old_count - drop == 1 then
    if #kept ~= last then return nil end
  elseif #kept <= last or byte(kept, #kept - last) ~= COMMA then
    return nil
  end
  local undo = {'[' .. old_count .. ',[]]'}
  if drop > 0 then
    -- The dropped entries as the undo records them (without the comma after the last, read on its own: no slice).
    local text, p = cut(f, open + 1, open + dropped - 1), 0
    for i = 1, drop - 1 do
      p = p + tonumber(sub(lengths, (i - 1) * LIST_WIDTH + 1, i * LIST_WIDTH)) + 1
      if byte(text, p) ~= COMMA then return nil end
    end
    if #text ~= dropped - 1 or cut(f, open + dropped, open + dropped) ~= ',' then
      return nil
    end
    undo = {'[' .. old_count .. ',[', text, ']]'}
  end
  return {'[', kept, ',', sub(added, 2)}, #kept + #added + 1, math.min(old_count + count, cap), undo,
    {index.part(drop * LIST_WIDTH + 1, index.n), added_index.part(1, added_index.n)}
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

-- The same by reading the whole document and scanning every value: documents without a (consistent) trailer.
local function fields_by_scanning(key, p)
  local doc = whole or redis.call('GET', key)
  p = p + #SEP_CS
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
  local up = sub(doc, p, last)
  return {cs = SEP_CS .. cs, iq = SEP_IQ .. iq, ri = SEP_RI .. ri, up = SEP_UP .. up, iq_n = array_length(iq),
    ri_n = array_length(ri)}
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
-- The stored fields (an absent session's are empty), each with its name in front.
local old = {cs = SEP_CS .. '{}', iq = SEP_IQ .. '[]', ri = SEP_RI .. '[]', up = SEP_UP .. '{}', iq_n = 0, ri_n = 0,
  cs_index = '', up_index = '', iq_index = index_text(''), ri_index = index_text('')}

local length = redis.call('STRLEN', key)
local exists = length > 0
if exists then
  local head = range(key, length, 0, 199)
  local v, s, t, p = string.match(head,
    '^{"version":(%d+),"storedAt":(%d+),"lastUpdated":%d+,"ttlSeconds":(%d+),()"conversationState":')
  if not v then return redis.error_reply('ERR session document at ' .. key .. ' has an unknown layout') end
  version, stored_at, old_ttl = tonumber(v), tonumber(s), tonumber(t)
  -- A merge needs the stored fields; a logged store or restore records them as what it replaced.
  if mode == 'merge' or history_depth > 0 then old = fields_by_spans(key, length, p) or fields_by_scanning(key, p) end
end

if expected >= 0 and expected ~= version then
  return {'CONFLICT', tostring(version)}
end

-- The new fields: each as pieces of the document (its name included), its byte length and its entry index (the
-- lists' as pieces); with the log entry's change (what the write was given) and undo (what it replaced) as pieces too.
local cs, up, iq, ri = {}, {}, {}, {}
local change, undo
if mode == 'merge' then
  local max_keys = tonumber(ARGV[22])
  local plans = {}
  for _, field in ipairs({{'cs', 'conversationState', 2, 20, SEP_CS}, {'up', 'userPreferences', 7, 21, SEP_UP}}) do
    local name, label, arg, index_arg, sep = field[1], field[2], field[3], field[4], field[5]
    local f = name == 'cs' and cs or up
    if ARGV[arg] ~= '' and ARGV[arg] ~= '{}' then
      local stored = old[name]
      local plan = type(stored) == 'table'
        and plan_merge(stored, stored.first, old[name .. '_index'], ARGV[arg], ARGV[index_arg])
      if not plan then
        plan = plan_merge(field_text(old, name), #sep + 1, old[name .. '_index'], ARGV[arg], ARGV[index_arg])
      end
      if plan.count > max_keys then return {'TOO_MANY_KEYS', label, tostring(plan.count)} end
      plans[name], f.bytes = plan, plan.bytes
    else
      -- Left as it was, and so is its index if that fits (checked: a document's index is trusted only then).
      local s, index = field_text(old, name), old[name .. '_index']
      if not (index and walk_index(s, #sep + 1, index)) then index = scan_index(s, #sep + 1) end
      f.pieces, f.bytes, f.index = {s}, #s - #sep, index
    end
  end
  for _, field in ipairs({{iq, 'iq', 3, 4, 24, max_interrupted, SEP_IQ}, {ri, 'ri', 5, 6, 25, max_recent, SEP_RI}}) do
    local f, name, arg, count_arg, index_arg, cap, sep = field[1], field[2], field[3], field[4], field[5], field[6],
      field[7]
    if ARGV[arg] ~= '' then
      local count = tonumber(ARGV[count_arg])
      local given_index = list_index(ARGV[arg], 1, count, ARGV[index_arg] and index_text(ARGV[index_arg]))
      local pieces, bytes, total, list_undo, index = append_stored(old, name, ARGV[arg], count, given_index, cap)
      if not pieces then
        pieces, bytes, total, list_undo, index = append_newest(field_text(old, name), #sep + 1, old[name .. '_n'],
          old[name .. '_index'], ARGV[arg], count, given_index, cap)
      end
      f.pieces, f.bytes, f.count, f.undo, f.index = append({sep}, pieces), bytes, total, list_undo, index
    else
      local s = field_text(old, name)
      f.pieces, f.bytes, f.count = {s}, #s - #sep, old[name .. '_n']
      local index = list_index(s, #sep + 1, f.count, old[name .. '_index'])
      f.index = {index.part(1, index.n)}
    end
  end
  local field_bytes = cs.bytes + iq.bytes + ri.bytes + up.bytes
  if field_bytes > tonumber(ARGV[11]) then return {'TOO_LARGE', tostring(field_bytes)} end

  change, undo = {'{'}, {'{'}
  local given, added = 0, {}
  for _, field in ipairs({{cs, 'cs', '"conversationState":', 2}, {iq, 'iq', '"interruptedQueries":', 3},
    {ri, 'ri', '"recentInteractions":', 5}, {up, 'up', '"userPreferences":', 7}}) do
    local f, name, label, arg = field[1], field[2], field[3], field[4]
    if ARGV[arg] ~= '' then
      local field_undo, named = f.undo or {'{}'}, false
      local plan = plans[name]
      if plan then
        local pieces, keys
        pieces, f.index, field_undo, keys, named = build_merge(plan)
        f.pieces = append({name == 'cs' and SEP_CS or SEP_UP}, pieces)
        if #keys > 0 then append(added, {#added > 0 and ',' or '', label, '['}, keys, {']'}) end
      end
      if given > 0 then change[#change + 1] = ',' end
      append(change, {label, ARGV[arg]})
      if named then
        -- conversationState comes first; userPreferences's stored text starts with the comma that follows another
        undo[#undo + 1] = (name == 'up' and given == 0) and sub(field_undo[1], 2) or field_undo[1]
      else
        if given > 0 then undo[#undo + 1] = ',' end
        append(undo, {label}, field_undo)
      end
      given = given + 1
    end
  end
  change[#change + 1] = '}'
  if #added > 0 then append(undo, {',"added":{'}, added, {'}'}) end
  undo[#undo + 1] = '}'
else
  local cs_index, up_index = ARGV[20], ARGV[21]
  if not walk_index(ARGV[2], 1, cs_index) then cs_index = scan_index(ARGV[2], 1) end
  if not walk_index(ARGV[7], 1, up_index) then up_index = scan_index(ARGV[7], 1) end
  cs.pieces, cs.bytes, cs.index = {SEP_CS, ARGV[2]}, #ARGV[2], cs_index
  up.pieces, up.bytes, up.index = {SEP_UP, ARGV[7]}, #ARGV[7], up_index
  local pieces, index
  pieces, iq.bytes, iq.count, index = newest(ARGV[3], tonumber(ARGV[4]), max_interrupted,
    list_index(ARGV[3], 1, tonumber(ARGV[4]), ARGV[24] and index_text(ARGV[24])))
  iq.pieces, iq.index = append({SEP_IQ}, pieces), {index}
  pieces, ri.bytes, ri.count, index = newest(ARGV[5], tonumber(ARGV[6]), max_recent,
    list_index(ARGV[5], 1, tonumber(ARGV[6]), ARGV[25] and index_text(ARGV[25])))
  ri.pieces, ri.index = append({SEP_RI}, pieces), {index}
  local field_bytes = cs.bytes + iq.bytes + ri.bytes + up.bytes
  if field_bytes > tonumber(ARGV[11]) then return {'TOO_LARGE', tostring(field_bytes)} end

  if exists then
    undo = {'{"replaced":{', field_text(old, 'cs'), field_text(old, 'iq'), field_text(old, 'ri'), field_text(old, 'up'),
      '}}'}
  else
    undo = {'{"created":true}'}
  end
  if mode == 'restore' then
    change = {ARGV[18]}
  elseif iq.count < tonumber(ARGV[4]) or ri.count < tonumber(ARGV[6]) then
    -- The caps dropped entries it was given: the context it leaves is not all it was given.
    change = {'{"conversationState":', ARGV[2], ',"interruptedQueries":', ARGV[3], ',"recentInteractions":', ARGV[5],
      ',"userPreferences":', ARGV[7], '}'}
  end
  -- Otherwise (change nil) a store's change is the context it leaves: neither its log entry nor its announcement
  -- carries it a second time.
end

if ttl == 0 then ttl = old_ttl or default_ttl end

local header = format('{"version":%d,"storedAt":%.0f,"lastUpdated":%.0f,"ttlSeconds":%d,', version + 1, stored_at, now,
  ttl)
local entries = append({cs.index, ';', up.index, ';'}, iq.index, {';'}, ri.index)
local entries_bytes = 0
for i = 1, #entries do entries_bytes = entries_bytes + #entries[i] end
local document = parts_of(append(
  {header},
  cs.pieces, iq.pieces, ri.pieces, up.pieces,
  {ENTRIES}, entries, {'"',
    format(',"spans":[%d,%d,%d,%d,%d,%d]}', cs.bytes, iq.bytes, iq.count, ri.bytes, ri.count, entries_bytes)}), {})
redis.call('SET', key, document[1], 'EX', ttl)
for i = 2, #document do redis.call('APPEND', key, document[i]) end
local expires_at = now + ttl * 1000
redis.call('ZADD', KEYS[3], now, member)
redis.call('ZADD', KEYS[4], expires_at, member)
redis.call('ZADD', KEYS[5], now, member)
redis.call('ZADD', KEYS[6], expires_at, member)

-- The log holds the newest history_depth versions, one after the other down from the current one: a session that
-- is new (or expired, or was deleted) starts a new log, and with history off the log goes.
local operation = mode == 'merge' and 'MERGE' or (mode == 'restore' and 'RESTORE' or 'STORE')
local change_parts = change and parts_of(change, {}) or {'null'}
if not exists or history_depth == 0 then redis.call('DEL', KEYS[7]) end
if history_depth > 0 then
  local entry = parts_of({format('{"version":%d,"at":%.0f,"operation":"%s",', version + 1, now, operation), ARGV[16],
    format(',"ttlSeconds":%d', ttl)}, {})
  if change then append(entry, {',"change":'}, change_parts) end
  parts_of(append({',"undo":'}, undo, {'}'}), entry)
  redis.call('LPUSH', KEYS[7], join(entry))
  redis.call('LTRIM', KEYS[7], 0, history_depth - 1)
  redis.call('PEXPIREAT', KEYS[7], expires_at)
end
-- The announcement carries the whole document: built only when a server process follows this user's channel (its
-- subscriber connection is on this node, the master of the tenant's slot). A message nobody receives costs a copy
-- and a hash of every byte of the context (~90 µs of a 64 KB merge's ~460), and a write nobody watches is the
-- common one.
if redis.call('PUBSUB', 'SHARDNUMSUB', ARGV[19])[2] > 0 then
  redis.call('SPUBLISH', ARGV[19], join(append({'U\n' .. member .. '\n' .. operation .. '\n'}, change_parts, {'\n'},
    document)))
end
return {'OK', ARGV[23] == 'header' and {header} or document, settings[5] and '0' or '1', cleanup_interval}

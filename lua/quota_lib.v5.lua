-- quota_lib v5: the window functions and the two operations (reserve, settle)
-- that quota_reserve, quota_settle, quota_batch and quota_usage share; the
-- gateway prepends this file to each of them.
-- v5: window hashes are read and written through this call's cache (H): a
-- hash is read with one HMGET the first time the call needs it (the fields
-- the call will need, as far as known, in that one read) and written once,
-- when the call ends (flush(): one HSET, one HDEL, one PEXPIRE at most), however
-- many operations touch it; new reservations join the lease zset in one ZADD,
-- renewed windows the index in one ZADD; the lease zset's and the index's
-- TTLs are checked once a call; a sweep that found every ended lease is not
-- run again in the same call (nothing else can end at the same `now`). So
-- quota_batch runs many reservations and settlements of one tag for about
-- the Redis commands of one. What each operation does and answers is v4's,
-- and so are hashes, lease members, tombstones and arguments: v4 and v5
-- replicas share them during a rolling deploy.
-- v4: `n` is the newest bucket that holds usage, and the reset (reset_ms)
-- counts from it: a reservation of 0 leaves it, a settle or refund that
-- empties it moves it back to the newest bucket still holding some, usage
-- settled into a newer bucket moves it there.
-- v3: calendar windows (one period of a calendar: a day, week or month in a
-- time zone) besides sliding ones, and the usage ledger (quota_settle).
-- v2: the index of a tag's windows is a zset scored with each window's end
-- (`{tag}:qidx`), trimmed as windows end and living no longer than its last
-- window.
-- A sliding window's hash holds `w` (window ms), `s` (sum of the buckets from
-- `o` to now), `o` (oldest bucket counted), `n` (newest bucket holding usage), `g`
-- (its generation: Redis time when it was made, so a reservation made before a
-- reset or expiry never moves the new window's buckets) and one field
-- per bucket (index = floor(ms / b), b = ceil(w / 60)). Keeping the sum makes a
-- check O(1): a bucket is subtracted once, when it leaves the window.
-- A calendar window's hash is the same with one bucket, the period: `w` is the
-- calendar's name (`month@Europe/Berlin`), `o` = `n` = the bucket's index = the
-- period's start (ms), `e` its end, `a` the highest alert percentage sent in it.
local N = 60
local T = redis.call('TIME')
local now = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)
-- the generation of a window made in this call
local GEN = T[1] .. T[2]
-- an empty list (never written to)
local NONE = {}

-- A whole number usable as an amount, limit or duration (x % 1 is NaN for NaN
-- and +-inf); amounts stay exact below 2^53.
local function whole(x)
  return x and x >= 0 and x % 1 == 0 and x <= 2^53
end

-- A hash field or value as Redis stores it (numbers here are whole).
local function str(x)
  if type(x) == 'number' then return string.format('%d', x) end
  return x
end

-- ---------------------------------------------------------------------------
-- the window hashes of this call

-- H[key] = { v = the hash as this call knows it: field -> value (a string
-- as read, or a whole number as written; false: absent), d = fields to write (or delete: v false) at flush, read = read
-- once, all = every field is in v (the hash was deleted or read whole), want =
-- fields the first read adds, gone = delete the hash first at flush, ttl =
-- PEXPIRE at flush }. Fields
-- are strings: a bucket `i` is str(i).
local H, touched = {}, {}
-- A call of one operation (quota_reserve, quota_settle) has nothing to
-- share: it reads and writes at once (DIRECT), as v4 did, and the cache
-- would only cost it time.
local DIRECT = false
-- the bucket each window's TTL was renewed for in this call
local renewed = {}

local function entry(key)
  local h = { v = {} }
  H[key] = h
  touched[#touched + 1] = key
  return h
end

-- Field `f` (a bucket, say) of `key` will be needed: read it with the first read.
local function want(key, f)
  local h = H[key] or entry(key)
  if not h.read then
    local w = h.want
    if not w then
      w = {}
      h.want = w
    end
    w[#w + 1] = str(f)
  end
end

-- Makes sure this call knows fields `...` of hash `key` and answers the
-- hash as the call left it (field -> value, false: absent): callers name
-- every field they read. Redis is asked only for fields the call does not
-- know yet (the first time also for the usual ones, `w s o n g e a`, and
-- those wanted), in one HMGET.
local function hget(key, ...)
  if DIRECT then
    -- (only the fields asked for: a lone operation reads what v4 read)
    local got = redis.call('HMGET', key, ...)
    local v = {}
    for i = 1, select('#', ...) do v[str((select(i, ...)))] = got[i] or false end
    return v
  end
  local h = H[key] or entry(key)
  local v = h.v
  if h.all then return v end
  local miss
  if not h.read then
    h.read = true
    miss = { 'w', 's', 'o', 'n', 'g', 'e', 'a' }
    local w = h.want
    if w then
      for i = 1, #w do miss[#miss + 1] = w[i] end
      h.want = nil
    end
  end
  for i = 1, select('#', ...) do
    local f = str((select(i, ...)))
    if v[f] == nil then
      if not miss then miss = {} end
      miss[#miss + 1] = f
    end
  end
  if miss then
    local got = redis.call('HMGET', key, unpack(miss))
    for i = 1, #miss do
      if v[miss[i]] == nil then v[miss[i]] = got[i] or false end
    end
  end
  return v
end

-- Every field of `key`, as the call left them (field -> value, false: absent).
local function hgetall(key)
  if DIRECT then
    local flat = redis.call('HGETALL', key)
    local v = {}
    for i = 1, #flat, 2 do v[flat[i]] = flat[i + 1] end
    return v
  end
  local h = H[key] or entry(key)
  if not h.all then
    local flat = redis.call('HGETALL', key)
    for i = 1, #flat, 2 do
      if h.v[flat[i]] == nil then h.v[flat[i]] = flat[i + 1] end
    end
    h.all, h.read = true, true
  end
  return h.v
end

-- The fields of `h` to write at flush (made on first use).
local function dirty(h)
  local d = h.d
  if not d then
    d = {}
    h.d = d
  end
  return d
end

-- HSET key f1 v1 f2 v2 ..., at flush.
local function hset(key, ...)
  if DIRECT then
    redis.call('HSET', key, ...)
    return
  end
  local h = H[key] or entry(key)
  local v, d = h.v, dirty(h)
  for i = 1, select('#', ...), 2 do
    local f = str((select(i, ...)))
    -- (a number stays one: Redis writes its digits at flush, once)
    v[f] = select(i + 1, ...)
    d[f] = true
  end
end

-- HDEL key f, at flush.
local function hdel(key, f)
  if DIRECT then
    redis.call('HDEL', key, f)
    return
  end
  local h = H[key] or entry(key)
  f = str(f)
  local x = h.v[f]
  -- known to be absent (read so, deleted already, or the hash was)
  if x == false or (x == nil and h.all) then return end
  h.v[f] = false
  dirty(h)[f] = true
end

-- DEL key, at flush (before what the call writes after it).
local function hwipe(key)
  renewed[key] = nil
  if DIRECT then
    redis.call('DEL', key)
    return
  end
  local h = H[key] or entry(key)
  h.v, h.d, h.all, h.read, h.want, h.gone, h.ttl = {}, nil, true, true, nil, true, nil
end

-- PEXPIRE key ms, at flush.
local function hexpire(key, ms)
  if DIRECT then
    redis.call('PEXPIRE', key, ms)
    return
  end
  local h = H[key] or entry(key)
  h.ttl = ms
end

-- ---------------------------------------------------------------------------
-- the lease zset and the index, at flush

-- per zset key: adds (score, member, ...) for one ZADD; keep: the zset
-- must live at least this many ms more; trim: up to this many ended entries
-- leave it
local Z, zkeys = {}, {}
local function zentry(key)
  local z = Z[key]
  if not z then
    z = { adds = {}, at = {}, rem = {}, keep = nil, ttl = nil, trim = 0 }
    Z[key] = z
    zkeys[#zkeys + 1] = key
  end
  return z
end

-- ZADD key score member, at flush (for members nothing in this call reads
-- before: scores in the future, members no one knows yet). Adding one
-- member again in the call replaces its score, as ZADD does.
local function zadd_later(key, score, member)
  if DIRECT then
    redis.call('ZADD', key, score, member)
    return
  end
  local z = zentry(key)
  local at = z.at[member]
  if at then
    z.adds[at - 1] = score
  else
    z.adds[#z.adds + 1] = score
    z.adds[#z.adds + 1] = member
    z.at[member] = #z.adds
  end
end

-- The reservations (lease zset members) this call looked up or removed:
-- M[lease] = { there = member -> whether it was in the zset when the call
-- began (read for many at once: `lookup`), gone = member -> removed by this
-- call }. A settlement removes its member with `take`: at once (ZREM) when
-- it was not looked up, else at flush, with the others, in one ZREM.
local M = {}
local function mentry(lease)
  local m = M[lease]
  if not m then
    m = { there = {}, gone = {} }
    M[lease] = m
  end
  return m
end

-- Whether each of `members` is in the zset, asked once (ZMSCORE).
local function lookup(lease, members)
  if #members == 0 then return end
  local m = mentry(lease)
  local scores = redis.call('ZMSCORE', lease, unpack(members))
  for i, x in ipairs(members) do m.there[x] = scores[i] ~= false end
end

-- Removes `member` from the zset: answers whether it was there (as ZREM does).
local function take(lease, member)
  local m = mentry(lease)
  if m.gone[member] then return false end
  local there = m.there[member]
  if there == nil then
    there = redis.call('ZREM', lease, member) == 1
  elseif there then
    zentry(lease).rem[#zentry(lease).rem + 1] = member
  end
  m.gone[member] = true
  return there
end

-- The lease zset lives at least `ms` more (plus a minute): as long as the
-- entry just written. It goes when its last member does, so it is checked
-- every call that writes one (once, at flush).
local function keep(lease, ms)
  if DIRECT then
    if redis.call('PTTL', lease) < ms then redis.call('PEXPIRE', lease, ms + 60000) end
    return
  end
  local z = zentry(lease)
  if not z.keep or z.keep < ms then z.keep = ms end
end

-- The index lives at least `ms` more (no minute added: it ends with its
-- last entry), and `n` more of its ended entries leave it.
local function index_upkeep(index, ms, n)
  if DIRECT then
    if redis.call('PTTL', index) < ms then redis.call('PEXPIRE', index, ms) end
    local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, n)
    if #gone > 0 then redis.call('ZREM', index, unpack(gone)) end
    return
  end
  local z = zentry(index)
  if not z.ttl or z.ttl < ms then z.ttl = ms end
  z.trim = z.trim + n
end

-- Writes what the call left in H and Z. Every script ends with it.
local function flush()
  for _, key in ipairs(touched) do
    local h = H[key]
    if h.gone then redis.call('DEL', key) end
    if h.d then
      local set, del = {}, {}
      for f in pairs(h.d) do
        local x = h.v[f]
        if x then
          set[#set + 1] = f
          set[#set + 1] = x
        else
          del[#del + 1] = f
        end
      end
      if #set > 0 then redis.call('HSET', key, unpack(set)) end
      if #del > 0 then redis.call('HDEL', key, unpack(del)) end
    end
    if h.ttl then redis.call('PEXPIRE', key, h.ttl) end
  end
  for _, key in ipairs(zkeys) do
    local z = Z[key]
    if #z.rem > 0 then redis.call('ZREM', key, unpack(z.rem)) end
    if #z.adds > 0 then redis.call('ZADD', key, unpack(z.adds)) end
    if z.keep and redis.call('PTTL', key) < z.keep then
      redis.call('PEXPIRE', key, z.keep + 60000)
    end
    if z.ttl and redis.call('PTTL', key) < z.ttl then redis.call('PEXPIRE', key, z.ttl) end
    if z.trim > 0 then
      -- index entries of windows that ended (each leaves once, and at most
      -- 64 join per renewal, so this keeps up)
      local gone = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, z.trim)
      if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
    end
  end
end

-- ---------------------------------------------------------------------------
-- windows

-- The window an argument names, as it stands now: a whole number of ms
-- (sliding), or `<calendar>,<t0>,<t1>,<t2>,<t3>`: four consecutive period
-- boundaries (ms) the gateway computed around its own clock; the period that
-- holds Redis's now is the one counted. Answers nil for a bad argument, false
-- when no given period holds now (the clocks disagree by more than a period).
local SPANS = {}
local function span_of(arg)
  local w = tonumber(arg)
  if w then
    if not whole(w) or w < 1 then return nil end
    local b = math.ceil(w / N)
    local cur = math.floor(now / b)
    return { w = w, b = b, cur = cur, lo = cur - N }
  end
  -- one pattern match, no table: this runs in every call of a calendar quota
  local name, a, b, c, d = string.match(arg, '^([^,]+),(%d+),(%d+),(%d+),(%d+)$')
  if not name or tonumber(name) then return nil end
  local t0, t1, t2, t3 = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if not (whole(t0) and whole(t1) and whole(t2) and whole(t3)) or t1 <= t0 or t2 <= t1
    or t3 <= t2 then
    return nil
  end
  if t0 <= now and now < t1 then return { cal = name, cur = t0, lo = t0, stop = t1 } end
  if t1 <= now and now < t2 then return { cal = name, cur = t1, lo = t1, stop = t2 } end
  if t2 <= now and now < t3 then return { cal = name, cur = t2, lo = t2, stop = t3 } end
  return false
end
-- (the spans of a call are read only: one table per argument)
local function span(arg)
  local sp = SPANS[arg]
  if sp == nil then
    sp = span_of(arg)
    if sp ~= nil then SPANS[arg] = sp end
  end
  return sp
end

-- Brings the window `sp` (a span) up to now: buckets older than the 61 any
-- sliding window ending now can overlap leave the sum, and so does a calendar
-- period that ended. Answers a table {key, sp, cur, sum, n, fresh, here, g}
-- (fresh: the hash did not exist or was another window, and was emptied).
local function advance(key, sp)
  local cur, lo = sp.cur, sp.lo
  local ck = str(cur)
  local v = hget(key, 'w', 's', 'o', 'n', 'g', ck)
  local w = v.w
  local win = { key = key, sp = sp, b = sp.b, cur = cur, ck = ck, sum = 0, n = nil, fresh = true,
    here = 0, g = GEN }
  local same
  if sp.cal then same = w == sp.cal else same = tonumber(w) == sp.w end
  if not same then
    if w then hwipe(key) end
    return win
  end
  win.fresh = false
  local s, o = tonumber(v.s) or 0, tonumber(v.o) or lo
  win.n = tonumber(v.n)
  win.here = tonumber(v[ck]) or 0
  win.g = v.g or '0'
  if o < lo then
    if sp.cal or lo - o > N + 1 then
      -- everything left (a calendar's period ended): start over (cheaper
      -- than one HDEL per bucket)
      hwipe(key)
      win.fresh, win.n, win.here, win.g = true, nil, 0, GEN
      return win
    end
    local old = {}
    for idx = o, lo - 1 do old[#old + 1] = idx end
    v = hget(key, unpack(old))
    for _, idx in ipairs(old) do
      local x = tonumber(v[str(idx)])
      if x then
        s = s - x
        hdel(key, idx)
      end
    end
    if s < 0 then s = 0 end
    hset(key, 's', s, 'o', lo)
  end
  win.sum = s
  return win
end

-- Adds `amount` to the current bucket (the window was advanced just before);
-- a new window gets its `w`, TTL and index entry.
local function add(win, amount, index)
  local sp = win.sp
  if win.fresh then
    if sp.cal then
      hset(win.key, 'w', sp.cal, 'o', sp.lo, 'e', sp.stop, 's', 0, 'g', win.g)
    else
      hset(win.key, 'w', sp.w, 'o', sp.lo, 's', 0, 'g', win.g)
    end
    win.fresh = false
  end
  local renew = win.n ~= win.cur
  if amount > 0 then
    win.here = win.here + amount
    win.sum = win.sum + amount
    if DIRECT then
      hset(win.key, win.ck, win.here, 's', win.sum, 'n', win.cur)
    else
      -- (hset's work, without its generality: this runs for every reservation)
      local h = H[win.key]
      local v, d = h.v, dirty(h)
      v[win.ck], v.s, v.n = win.here, win.sum, win.cur
      d[win.ck], d.s, d.n = true, true, true
    end
    win.n = win.cur
  end
  if renew and renewed[win.key] ~= win.cur then
    -- once per bucket (and call): the hash outlives its newest bucket by a
    -- window (after that nothing in it counts; a calendar's by a minute past
    -- its period), and its index entry (for /admin/usage) is scored with the
    -- hash's end; the index lives as long as its last entry
    renewed[win.key] = win.cur
    local ttl
    if sp.cal then ttl = sp.stop - now + 60000 else ttl = 2 * sp.w + sp.b end
    hexpire(win.key, ttl)
    zadd_later(index, now + ttl, win.key)
    index_upkeep(index, ttl, 64)
  end
end

-- Moves bucket `idx` of `key` by `delta` (a settle or a refund), never below
-- zero, and only while that bucket still counts (a window that expired, was
-- reset or moved past it is left alone; so is a bucket past the current one:
-- it was numbered for another window length, and would never leave the sum).
local function adjust(key, idx, delta, gen)
  if delta == 0 then return true end
  local ik = str(idx)
  local v = hget(key, 'o', 's', 'w', ik, 'g', 'e', 'n')
  local o, s, w = tonumber(v.o), tonumber(v.s), tonumber(v.w)
  -- answers false when the bucket no longer counts: gone, left the window (`o`
  -- only moves when the window is advanced, so it is checked against now too;
  -- a calendar's one bucket counts until its period's end), or the window was
  -- made anew since (reset, expired, window changed: another generation)
  if not o or not s or not v.w or (v.g or '0') ~= gen then return false end
  local cur
  if w then
    cur = math.floor(now / math.ceil(w / N))
    if idx < o or idx < cur - N or idx > cur then return false end
  elseif idx ~= o or now >= (tonumber(v.e) or 0) then
    return false
  end
  local x = tonumber(v[ik]) or 0
  local n = tonumber(v.n)
  local nx = x + delta
  if nx < 0 then nx = 0 end
  s = s + (nx - x)
  if s < 0 then s = 0 end
  if nx == 0 then
    hdel(key, idx)
    hset(key, 's', s)
    if w and n == idx then
      -- the newest bucket holding usage emptied: `n` moves to the one before
      -- it that still holds some (what reset_ms counts from), or goes
      local lo = math.max(o, cur - N)
      local older = {}
      for i = idx - 1, lo, -1 do older[#older + 1] = i end
      local newest
      if #older > 0 then
        v = hget(key, unpack(older))
        for k = 1, #older do
          if tonumber(v[str(older[k])]) then newest = older[k]; break end
        end
      end
      if newest then hset(key, 'n', newest) else hdel(key, 'n') end
    end
  elseif w and idx > (n or -1) then
    -- a bucket newer than `n` (reserved at 0) now holds usage
    hset(key, idx, nx, 's', s, 'n', idx)
  else
    hset(key, idx, nx, 's', s)
  end
  return true
end

-- ms until the newest bucket holding usage leaves the window (0 when empty)
local function reset_ms(win)
  if win.sp.cal then
    if win.sum <= 0 then return 0 end
    return win.sp.stop - now
  end
  if win.sum <= 0 or not win.n or win.n < win.cur - N then return 0 end
  return (win.n + N + 1) * win.b - now
end

-- ---------------------------------------------------------------------------
-- leases

-- A reservation is one member of the lease zset, scored with its lease end:
-- "<id>\n<key>\n<bucket>\n<amount>\n<generation>\n..." (keys and subjects hold no
-- newline). A settle removes exactly that member; nothing else is stored per
-- request. Tombstones "E\n<id>" (lease ended, reservation given back) and
-- "S\n<id>" (usage charged without reservation) are scored with their end.
local function parts(member)
  local out, i, len = {}, 1, #member
  while i <= len do
    local j = string.find(member, '\n', i, true) or len + 1
    if j > i then out[#out + 1] = string.sub(member, i, j - 1) end
    i = j + 1
  end
  return out
end

-- Leases that ran out: their holder died. Each reservation is given back and
-- leaves an E tombstone, so a late settle still charges the real usage; ended
-- tombstones go. At most `max` per call; answers how many were given back.
-- Once a sweep found fewer than its `max` ended entries, none is left at this
-- `now` (what the call adds ends later): the call sweeps no more.
local swept_all = {}
local function sweep(lease, tomb_ms, max)
  if swept_all[lease] then return 0 end
  local given = 0
  -- (reservations this call settled leave the zset at flush: not again)
  local gone = mentry(lease).gone
  local settled = #zentry(lease).rem
  local ended = redis.call('ZRANGEBYSCORE', lease, '-inf', now, 'LIMIT', 0, max + settled)
  if #ended < max + settled then swept_all[lease] = true end
  for _, m in ipairs(ended) do
    if not gone[m] then
      gone[m] = true
      redis.call('ZREM', lease, m)
      local p = parts(m)
      if p[1] ~= 'E' and p[1] ~= 'S' then
        for k = 2, #p - 3, 4 do adjust(p[k], tonumber(p[k + 1]), -tonumber(p[k + 2]), p[k + 3]) end
        redis.call('ZADD', lease, now + tomb_ms, 'E\n' .. p[1])
        given = given + 1
      end
    end
  end
  -- removing the last member deleted the zset, and ZADD made it anew
  if given > 0 then keep(lease, tomb_ms) end
  return given
end

-- ---------------------------------------------------------------------------
-- the usage ledger

-- Adds one request's figures (nine numbers, see nine()) to the usage ledger:
-- in hash `key` (one UTC day), field `dims` (tenant, consumer, model, provider
-- as a JSON array) holds the group's nine figures, comma-separated in the
-- order requests, input,
-- output, cached, cache write, reasoning tokens, cost (nano-units), unpriced
-- and estimated requests: one read and one write a request. Sums are exact
-- up to 2^53 (9,007,199 currency units of cost a group and day) and stop
-- there. The hash expires at `expire_at` (unix s), set when a group's first
-- request of the day makes its field.
-- Nine whole numbers of comma-separated text, each at most 2^53 (told by its
-- digits: the double 2^53 + 1 reads as 2^53), as a table; or nil.
local LEDGER9 = '^(%d+),(%d+),(%d+),(%d+),(%d+),(%d+),(%d+),(%d+),(%d+)$'
local function big(v) return #v > 15 and (#v > 16 or v > '9007199254740992') end
local function nine(text)
  local a, b, c, d, e, f, g, h, i = string.match(text, LEDGER9)
  if not i or big(a) or big(b) or big(c) or big(d) or big(e) or big(f) or big(g)
    or big(h) or big(i) then
    return nil
  end
  return { tonumber(a), tonumber(b), tonumber(c), tonumber(d), tonumber(e), tonumber(f),
    tonumber(g), tonumber(h), tonumber(i) }
end

local LEDGER_FMT = '%d,%d,%d,%d,%d,%d,%d,%d,%d'
local function ledger_add(key, dims, n, expire_at)
  local old = redis.call('HGET', key, dims)
  local v
  if old then
    -- (written by this function: no check but the shape)
    local a, b, c, d, e, f, g, h, i = string.match(old, LEDGER9)
    if i then
      local M, min = 2^53, math.min
      v = string.format(LEDGER_FMT, min(a + n[1], M), min(b + n[2], M), min(c + n[3], M),
        min(d + n[4], M), min(e + n[5], M), min(f + n[6], M), min(g + n[7], M),
        min(h + n[8], M), min(i + n[9], M))
    end
  end
  v = v or string.format(LEDGER_FMT, n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8], n[9])
  redis.call('HSET', key, dims, v)
  if not old then redis.call('EXPIREAT', key, expire_at) end
end

-- ---------------------------------------------------------------------------
-- reserve: amounts on several quotas of one hash tag, all or nothing

-- A reservation from its arguments, without its quotas (reserve_quota adds
-- them); or nil and the error.
local function reserve_op(id, lease_ms, tomb_ms)
  lease_ms, tomb_ms = tonumber(lease_ms), tonumber(tomb_ms)
  if not whole(lease_ms) or not whole(tomb_ms) or lease_ms < 1 or tomb_ms < 1
    or id == '' or string.find(id, '\n', 1, true) then
    return nil, 'quota_reserve: bad arguments'
  end
  return { id = id, lease_ms = lease_ms, tomb_ms = tomb_ms, quotas = {} }
end

-- Adds quota `i` (window key, limit, window argument, amount: texts) to
-- reservation `r`: answers true, or nil and the error.
local function reserve_quota(r, i, key, limit, window, amount)
  limit, amount = tonumber(limit), tonumber(amount)
  local sp = span(window)
  -- a fraction would fail after other quotas were charged
  if not whole(limit) or sp == nil or not whole(amount) then
    return nil, 'quota_reserve: bad quota arguments at ' .. i
  end
  if sp == false then
    return nil, 'quota_reserve: no calendar period given holds the time now at ' .. i
  end
  r.quotas[i] = { key = key, limit = limit, sp = sp, amount = amount }
  return true
end

-- the first quota that refuses, or nil
local function refusing(quotas)
  for i, q in ipairs(quotas) do
    local sum = q.win.sum
    if q.amount > q.limit or sum + q.amount > q.limit or (q.amount == 0 and sum >= q.limit) then
      return i
    end
  end
  return nil
end

-- ms until enough of the oldest buckets leave for `need` more to fit
local function retry_ms(win, need)
  -- a calendar period frees everything at its end
  if win.sp.cal then return win.sp.stop - now end
  local fields = {}
  for f, x in pairs(hgetall(win.key)) do
    local idx = tonumber(f)
    if idx and x then fields[idx] = tonumber(x) end
  end
  local freed = 0
  for idx = win.cur - N, win.cur do
    freed = freed + (fields[idx] or 0)
    if freed >= need and freed > 0 then return (idx + N + 1) * win.b - now end
  end
  return -1
end

-- Runs reservation `r` (from reserve_op). Answers {1, now_ms, used_1,
-- reset_ms_1, ..., member} when admitted (used includes this reservation;
-- member is what a settle takes) or {0, now_ms, i, retry_ms, used_i, used_1,
-- reset_ms_1, ...} when quota i refuses (retry_ms -1: the amount alone
-- exceeds the limit; the pairs are every quota as it stands, nothing reserved).
local function do_reserve(lease, index, r)
  local quotas = r.quotas
  for _, q in ipairs(quotas) do q.win = advance(q.key, q.sp) end
  local refused = refusing(quotas)
  -- ended leases only matter when they would refuse: sweep then (and now and
  -- then anyway, so tombstones do not pile up)
  local given = 0
  if refused then
    given = sweep(lease, r.tomb_ms, 256)
  elseif now % 16 == 0 then
    given = sweep(lease, r.tomb_ms, 64)
  end
  if given > 0 then
    -- the sweep moved buckets and sums: bring the windows up again
    for _, q in ipairs(quotas) do q.win = advance(q.key, q.sp) end
    refused = refusing(quotas)
  end
  if refused then
    -- every quota as it stands (the client's x-ratelimit headers)
    local q = quotas[refused]
    local retry = -1
    if q.amount <= q.limit then retry = retry_ms(q.win, q.win.sum + q.amount - q.limit) end
    local out = { 0, now, refused, retry, q.win.sum }
    for _, x in ipairs(quotas) do
      out[#out + 1] = x.win.sum
      out[#out + 1] = reset_ms(x.win)
    end
    return out
  end
  local out = { 1, now }
  local member = { r.id }
  for _, q in ipairs(quotas) do
    add(q.win, q.amount, index)
    member[#member + 1] = q.key
    member[#member + 1] = q.win.ck
    member[#member + 1] = string.format('%d', q.amount)
    member[#member + 1] = q.win.g
    out[#out + 1] = q.win.sum
    out[#out + 1] = reset_ms(q.win)
  end
  member = table.concat(member, '\n')
  zadd_later(lease, now + r.lease_ms, member)
  keep(lease, r.lease_ms + r.tomb_ms)
  out[#out + 1] = member
  return out
end

-- ---------------------------------------------------------------------------
-- settle: a reservation replaced by the real usage, once

-- A settlement from its arguments, without its quotas (settle_quota adds
-- them): mode 'r' (member: what reserve answered) or 'u' (charge the usage
-- now; member ''), the ledger entry (`ledger` the day hash, dims '' = none),
-- `n` quotas; or nil and the error.
local function settle_op(id, tomb_ms, mode, member, ledger, dims, figures, expire_at, n)
  tomb_ms, expire_at = tonumber(tomb_ms), tonumber(expire_at)
  if not whole(tomb_ms) or tomb_ms < 1 or (mode ~= 'r' and mode ~= 'u') or id == ''
    or (n == 0 and mode ~= 'u') then
    return nil, 'quota_settle: bad arguments'
  end
  local entry
  if dims ~= '' then
    entry = nine(figures)
    if not entry or not whole(expire_at) then return nil, 'quota_settle: bad ledger entry' end
  end
  return { id = id, tomb_ms = tomb_ms, mode = mode, member = member, ledger = ledger,
    dims = dims, entry = entry, expire_at = expire_at, q = {} }
end

-- Adds quota `i` (window key, window argument, actual amount, limit, alert
-- percentages '' or '50,80,100': texts) to settlement `c`: answers true, or
-- nil and the error.
local function settle_quota(c, i, key, window, actual, limit, alerts)
  local sp = span(window)
  actual, limit = tonumber(actual), tonumber(limit)
  if not sp or not whole(actual) or not whole(limit) then
    return nil, 'quota_settle: bad quota arguments at ' .. i
  end
  local pcts = NONE
  if alerts ~= '' then
    pcts = {}
    for x in string.gmatch(alerts, '[^,]+') do
      local p = tonumber(x)
      if not whole(p) or p < 1 or p > 100 then return nil, 'quota_settle: bad alert at ' .. i end
      pcts[#pcts + 1] = p
    end
  end
  c.q[i] = { key = key, sp = sp, actual = actual, limit = limit, alerts = pcts }
  return true
end

-- The usage of settlement `c` was charged: its ledger entry, and the alerts
-- it crossed; answers {code, i, percent, used, ...}.
local function charged(c, code)
  if c.dims ~= '' then ledger_add(c.ledger, c.dims, c.entry, c.expire_at) end
  local out = { code }
  for i, q in ipairs(c.q) do
    local sp = q.sp
    if #q.alerts > 0 and sp.cal then
      -- the window as this call left it: this period's sum (a hash of
      -- another calendar or period was not charged here: nothing to say)
      local v = hget(q.key, 'w', 'o', 's', 'a')
      if v.w == sp.cal and tonumber(v.o) == sp.cur then
        local sum, sent = tonumber(v.s) or 0, tonumber(v.a) or 0
        local top = 0
        for _, p in ipairs(q.alerts) do
          if p > top and sum * 100 >= p * q.limit then top = p end
        end
        if top > sent then
          hset(q.key, 'a', top)
          out[#out + 1] = i
          out[#out + 1] = top
          out[#out + 1] = sum
        end
      end
    end
  end
  return out
end

-- Runs settlement `c` (from settle_op). Answers {code, i, percent, used, ...}:
-- code 1 settled, 2 already charged (mode u), 3 the lease had ended (the
-- reservation was given back; the usage is charged now), 4 charged without
-- reservation, 0 nothing to settle (settled before, or never reserved); then
-- for each alert percentage a quota crossed now for the first time in its
-- period: its index, the percentage and what the window holds. The ledger
-- entry is added exactly when the usage is charged (1, 3, 4), so a settlement
-- sent twice is counted once.
local function do_settle(lease, index, c)
  local qs = c.q
  if c.mode == 'r' and c.member ~= '' and take(lease, c.member) then
    local p = c.parts or parts(c.member)
    for i, q in ipairs(qs) do
      local k = 2 + 4 * (i - 1)
      local reserved = tonumber(p[k + 2])
      if reserved then
        local delta = q.actual - reserved
        -- usage beyond the reservation whose bucket has left the window (a long
        -- stream, a period that ended) still counts: in the current bucket
        if not adjust(p[k], tonumber(p[k + 1]), delta, p[k + 3]) and delta > 0 then
          add(advance(p[k], q.sp), delta, index)
        end
      end
    end
    return charged(c, 1)
  end
  -- usage from the retry queue, which may send it twice: counted once (checked
  -- first: a reserve whose answer was lost leaves an E tombstone later)
  if c.mode == 'u' and redis.call('ZSCORE', lease, 'S\n' .. c.id) then return { 2 } end
  -- a lease that ended: the reservation went back, the usage is charged now
  local ended = redis.call('ZREM', lease, 'E\n' .. c.id) == 1
  if not ended and c.mode == 'r' then return { 0 } end
  -- the usage, in the current bucket of every window
  for _, q in ipairs(qs) do add(advance(q.key, q.sp), q.actual, index) end
  if c.mode == 'u' then
    redis.call('ZADD', lease, now + c.tomb_ms, 'S\n' .. c.id)
    keep(lease, c.tomb_ms)
  end
  if ended then return charged(c, 3) end
  return charged(c, 4)
end

-- What settlement `c` will read: each reservation's bucket, with the first
-- read of its window.
local function settle_wants(c)
  if c.mode ~= 'r' or c.member == '' then return end
  local p = parts(c.member)
  c.parts = p
  for k = 2, #p - 3, 4 do want(p[k], p[k + 1]) end
end

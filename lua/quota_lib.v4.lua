-- quota_lib v4: the window functions quota_reserve, quota_settle and
-- quota_usage share; the gateway prepends this file to each of them.
-- v4: `n` is the newest bucket that holds usage, and the reset (reset_ms)
-- counts from it: a reservation of 0 leaves it, a settle or refund that
-- empties it moves it back to the newest bucket still holding some, usage
-- settled into a newer bucket moves it there (v3 counted from buckets
-- reserved at 0 and from emptied ones, and missed the last case). Hashes,
-- members and arguments are v3's.
-- v3: calendar windows (one period of a calendar: a day, week or month in a
-- time zone) besides sliding ones, and the usage ledger (quota_settle).
-- v2: the index of a tag's windows is a zset scored with each window's end
-- (`{tag}:qidx`), trimmed as windows end and living no longer than its last
-- window, instead of a set that only quota_usage emptied.
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

-- A whole number usable as an amount, limit or duration (x % 1 is NaN for NaN
-- and +-inf); amounts stay exact below 2^53.
local function whole(x)
  return x and x >= 0 and x % 1 == 0 and x <= 2^53
end

-- The window an argument names, as it stands now: a whole number of ms
-- (sliding), or `<calendar>,<t0>,<t1>,<t2>,<t3>`: four consecutive period
-- boundaries (ms) the gateway computed around its own clock; the period that
-- holds Redis's now is the one counted. Answers nil for a bad argument, false
-- when no given period holds now (the clocks disagree by more than a period).
local function span(arg)
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

-- Brings the window `sp` (a span) up to now: buckets older than the 61 any
-- sliding window ending now can overlap leave the sum, and so does a calendar
-- period that ended. Answers a table {key, sp, cur, sum, n, fresh, here, g}
-- (fresh: the hash did not exist or was another window, and was emptied).
local function advance(key, sp)
  local cur, lo = sp.cur, sp.lo
  local m = redis.call('HMGET', key, 'w', 's', 'o', 'n', cur, 'g')
  local win = { key = key, sp = sp, b = sp.b, cur = cur, sum = 0, n = nil, fresh = true,
    here = 0, g = T[1] .. T[2] }
  local same
  if sp.cal then same = m[1] == sp.cal else same = tonumber(m[1]) == sp.w end
  if not same then
    if m[1] then redis.call('DEL', key) end
    return win
  end
  win.fresh = false
  local s, o = tonumber(m[2]) or 0, tonumber(m[3]) or lo
  win.n = tonumber(m[4])
  win.here = tonumber(m[5]) or 0
  win.g = m[6] or '0'
  if o < lo then
    if sp.cal or lo - o > N + 1 then
      -- everything left (a calendar's period ended): start over (cheaper
      -- than one HDEL per bucket)
      redis.call('DEL', key)
      win.fresh, win.n, win.here, win.g = true, nil, 0, T[1] .. T[2]
      return win
    end
    for idx = o, lo - 1 do
      local v = tonumber(redis.call('HGET', key, idx))
      if v then
        s = s - v
        redis.call('HDEL', key, idx)
      end
    end
    if s < 0 then s = 0 end
    redis.call('HSET', key, 's', string.format('%d', s), 'o', lo)
  end
  win.sum = s
  return win
end

-- Index entries of windows that ended leave the index, at most 64 a call (each
-- entry leaves once, so this keeps up with the entries renewals add).
local function trim(index)
  local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, 64)
  if #gone > 0 then redis.call('ZREM', index, unpack(gone)) end
end

-- Adds `amount` to the current bucket (the window was advanced just before);
-- a new window gets its `w`, TTL and index entry.
local function add(win, amount, index)
  local sp = win.sp
  if win.fresh then
    if sp.cal then
      redis.call('HSET', win.key, 'w', sp.cal, 'o', sp.lo, 'e', sp.stop, 's', 0, 'g', win.g)
    else
      redis.call('HSET', win.key, 'w', sp.w, 'o', sp.lo, 's', 0, 'g', win.g)
    end
    win.fresh = false
  end
  local renew = win.n ~= win.cur
  if amount > 0 then
    win.here = win.here + amount
    win.sum = win.sum + amount
    redis.call('HSET', win.key, win.cur, string.format('%d', win.here),
      's', string.format('%d', win.sum), 'n', win.cur)
    win.n = win.cur
  end
  if renew then
    -- once per bucket: the hash outlives its newest bucket by a window (after
    -- that nothing in it counts; a calendar's by a minute past its period),
    -- and its index entry (for /admin/usage) is scored with the hash's end;
    -- the index lives as long as its last entry
    local ttl
    if sp.cal then ttl = sp.stop - now + 60000 else ttl = 2 * sp.w + sp.b end
    redis.call('PEXPIRE', win.key, ttl)
    redis.call('ZADD', index, now + ttl, win.key)
    if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
    trim(index)
  end
end

-- Moves bucket `idx` of `key` by `delta` (a settle or a refund), never below
-- zero, and only while that bucket still counts (a window that expired, was
-- reset or moved past it is left alone; so is a bucket past the current one:
-- it was numbered for another window length, and would never leave the sum).
local function adjust(key, idx, delta, gen)
  if delta == 0 then return true end
  local m = redis.call('HMGET', key, 'o', 's', 'w', idx, 'g', 'e', 'n')
  local o, s, w = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
  -- answers false when the bucket no longer counts: gone, left the window (`o`
  -- only moves when the window is advanced, so it is checked against now too;
  -- a calendar's one bucket counts until its period's end), or the window was
  -- made anew since (reset, expired, window changed: another generation)
  if not o or not s or not m[3] or (m[5] or '0') ~= gen then return false end
  local cur
  if w then
    cur = math.floor(now / math.ceil(w / N))
    if idx < o or idx < cur - N or idx > cur then return false end
  elseif idx ~= o or now >= (tonumber(m[6]) or 0) then
    return false
  end
  local v = tonumber(m[4]) or 0
  local nv = v + delta
  if nv < 0 then nv = 0 end
  s = s + (nv - v)
  if s < 0 then s = 0 end
  if nv == 0 then
    redis.call('HDEL', key, idx)
    redis.call('HSET', key, 's', string.format('%d', s))
    if w and tonumber(m[7]) == idx then
      -- the newest bucket holding usage emptied: `n` moves to the one before
      -- it that still holds some (what reset_ms counts from), or goes
      local lo = math.max(o, cur - N)
      local older = {}
      for i = idx - 1, lo, -1 do older[#older + 1] = i end
      local newest
      if #older > 0 then
        local held = redis.call('HMGET', key, unpack(older))
        for k = 1, #older do
          if tonumber(held[k]) then newest = older[k]; break end
        end
      end
      if newest then redis.call('HSET', key, 'n', newest) else redis.call('HDEL', key, 'n') end
    end
  elseif w and idx > (tonumber(m[7]) or -1) then
    -- a bucket newer than `n` (reserved at 0) now holds usage
    redis.call('HSET', key, idx, string.format('%d', nv), 's', string.format('%d', s), 'n', idx)
  else
    redis.call('HSET', key, idx, string.format('%d', nv), 's', string.format('%d', s))
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

-- The lease zset lives at least `ms` more (plus a minute): as long as the entry
-- just written. It goes when its last member does, so it is checked every time.
local function keep(lease, ms)
  if redis.call('PTTL', lease) < ms then redis.call('PEXPIRE', lease, ms + 60000) end
end

-- A reservation is one member of the lease zset, scored with its lease end:
-- "<id>\n<key>\n<bucket>\n<amount>\n<generation>\n..." (keys and subjects hold no
-- newline). A settle removes exactly that member; nothing else is stored per
-- request. Tombstones "E\n<id>" (lease ended, reservation given back) and
-- "S\n<id>" (usage charged without reservation) are scored with their end.
local function parts(member)
  local out = {}
  for p in string.gmatch(member, '[^\n]+') do out[#out + 1] = p end
  return out
end

-- Leases that ran out: their holder died. Each reservation is given back and
-- leaves an E tombstone, so a late settle still charges the real usage; ended
-- tombstones go. At most `max` per call; answers how many were given back.
local function sweep(lease, tomb_ms, max)
  local given = 0
  local ended = redis.call('ZRANGEBYSCORE', lease, '-inf', now, 'LIMIT', 0, max)
  for _, m in ipairs(ended) do
    redis.call('ZREM', lease, m)
    local p = parts(m)
    if p[1] ~= 'E' and p[1] ~= 'S' then
      for k = 2, #p - 3, 4 do adjust(p[k], tonumber(p[k + 1]), -tonumber(p[k + 2]), p[k + 3]) end
      redis.call('ZADD', lease, now + tomb_ms, 'E\n' .. p[1])
      given = given + 1
    end
  end
  -- removing the last member deleted the zset, and ZADD made it anew
  if given > 0 then keep(lease, tomb_ms) end
  return given
end

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

-- quota_reserve v4 (after quota_lib.v4): reserve amounts on several
-- quotas of one hash tag, all or nothing. See lua/README.md.
-- v4: the reset counts from the newest bucket holding usage (quota_lib v4).
-- v3: a window is sliding (ms) or a calendar period (see span() in quota_lib).
-- v2: KEYS[2] is the index zset `{tag}:qidx` (v1: the set `{tag}:qkeys`).
-- KEYS[1] lease zset, KEYS[2] index zset, KEYS[3..] one window hash per quota.
-- ARGV[1] reservation id, ARGV[2] lease ms, ARGV[3] tombstone ms,
-- then per quota: limit, window (ms, or a calendar: see span()), amount.
-- Answers {1, now_ms, used_1, reset_ms_1, ..., member} when admitted (used
-- includes this reservation; member is what quota_settle takes) or
-- {0, now_ms, i, retry_ms, used_i, used_1, reset_ms_1, ...} when quota i
-- refuses (retry_ms -1: the amount alone exceeds the limit; the pairs are every
-- quota as it stands, nothing reserved).
local lease, index = KEYS[1], KEYS[2]
local id = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local tomb_ms = tonumber(ARGV[3])
local n = #KEYS - 2
if n < 1 or #ARGV ~= 3 + 3 * n or not whole(lease_ms) or not whole(tomb_ms)
  or lease_ms < 1 or tomb_ms < 1 or id == '' or string.find(id, '\n', 1, true) then
  return redis.error_reply('quota_reserve: bad arguments')
end
local quotas = {}
for i = 1, n do
  local limit = tonumber(ARGV[1 + 3 * i])
  local sp = span(ARGV[2 + 3 * i])
  local amount = tonumber(ARGV[3 + 3 * i])
  -- a fraction would fail after other quotas were charged
  if not whole(limit) or sp == nil or not whole(amount) then
    return redis.error_reply('quota_reserve: bad quota arguments at ' .. i)
  end
  if sp == false then
    return redis.error_reply('quota_reserve: no calendar period given holds the time now at ' .. i)
  end
  quotas[i] = { key = KEYS[2 + i], limit = limit, sp = sp, amount = amount }
end

-- the first quota that refuses, or nil
local function refusing()
  for i, q in ipairs(quotas) do
    local sum = q.win.sum
    if q.amount > q.limit or sum + q.amount > q.limit or (q.amount == 0 and sum >= q.limit) then
      return i
    end
  end
  return nil
end

for _, q in ipairs(quotas) do q.win = advance(q.key, q.sp) end
local refused = refusing()
-- ended leases only matter when they would refuse: sweep then (and now and
-- then anyway, so tombstones do not pile up)
local given = 0
if refused then
  given = sweep(lease, tomb_ms, 256)
elseif now % 16 == 0 then
  given = sweep(lease, tomb_ms, 64)
end
if given > 0 then
  -- the sweep moved buckets and sums: read the windows again (add() would
  -- write back the old ones)
  for _, q in ipairs(quotas) do q.win = advance(q.key, q.sp) end
  refused = refusing()
end

-- ms until enough of the oldest buckets leave for `need` more to fit
local function retry_ms(win, need)
  -- a calendar period frees everything at its end
  if win.sp.cal then return win.sp.stop - now end
  local flat = redis.call('HGETALL', win.key)
  local fields = {}
  for i = 1, #flat, 2 do
    local idx = tonumber(flat[i])
    if idx then fields[idx] = tonumber(flat[i + 1]) end
  end
  local freed = 0
  for idx = win.cur - N, win.cur do
    freed = freed + (fields[idx] or 0)
    if freed >= need and freed > 0 then return (idx + N + 1) * win.b - now end
  end
  return -1
end

if refused then
  -- every quota as it stands (the client's x-ratelimit headers)
  local q = quotas[refused]
  local retry = -1
  if q.amount <= q.limit then retry = retry_ms(q.win, q.win.sum + q.amount - q.limit) end
  local r = { 0, now, refused, retry, q.win.sum }
  for _, x in ipairs(quotas) do
    r[#r + 1] = x.win.sum
    r[#r + 1] = reset_ms(x.win)
  end
  return r
end

local out = { 1, now }
local member = { id }
for _, q in ipairs(quotas) do
  add(q.win, q.amount, index)
  member[#member + 1] = q.key
  member[#member + 1] = string.format('%d', q.win.cur)
  member[#member + 1] = string.format('%d', q.amount)
  member[#member + 1] = q.win.g
  out[#out + 1] = q.win.sum
  out[#out + 1] = reset_ms(q.win)
end
member = table.concat(member, '\n')
redis.call('ZADD', lease, now + lease_ms, member)
keep(lease, lease_ms + tomb_ms)
out[#out + 1] = member
return out

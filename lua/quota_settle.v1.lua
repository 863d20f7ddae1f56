-- quota_settle v1 (after quota_lib.v1): replaces a reservation by the real
-- usage, once per reservation id. See lua/README.md ("Quotas").
-- KEYS as quota_reserve (reservations hash, lease zset, index set, windows).
-- ARGV[1] reservation id, ARGV[2] tombstone ms, ARGV[3] "r" (a reservation was
-- made) or "u" (admitted without Redis: charge the usage now),
-- then per quota: window ms, actual amount.
-- Answers 1 settled (mode r forgets the record, mode u keeps a tombstone),
-- 2 already settled, 3 lease had expired (usage charged now), 4 charged
-- without reservation, 0 nothing to settle.
local res, lease, index = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local tomb_ms = tonumber(ARGV[2])
local mode = ARGV[3]
local n = #KEYS - 3
if n < 1 or #ARGV ~= 3 + 2 * n or not whole(tomb_ms) or tomb_ms < 1
  or (mode ~= 'r' and mode ~= 'u') then
  return redis.error_reply('quota_settle: bad arguments')
end
local actual, windows = {}, {}
for i = 1, n do
  local w = tonumber(ARGV[2 + 2 * i])
  local a = tonumber(ARGV[3 + 2 * i])
  if not whole(w) or not whole(a) or w < 1 then
    return redis.error_reply('quota_settle: bad quota arguments at ' .. i)
  end
  windows[i], actual[i] = w, a
end

local function tombstone(rec)
  rec.s = 'S'
  redis.call('HSET', res, id, cjson.encode(rec))
  redis.call('ZADD', lease, now + tomb_ms, id)
end

-- charges the usage in the current bucket of every window
local function charge()
  local rec = { s = 'S', q = {} }
  for i = 1, n do
    local win = advance(KEYS[3 + i], windows[i])
    add(win, actual[i], index)
    rec.q[i] = { win.key, string.format('%d', win.cur), string.format('%d', actual[i]) }
  end
  tombstone(rec)
end

local raw = redis.call('HGET', res, id)
local rec = raw and cjson.decode(raw)
if not rec then
  if mode == 'u' then
    charge()
    return 4
  end
  return 0
end
if rec.s == 'S' then return 2 end
if rec.s == 'E' then
  charge()
  return 3
end
for i, q in ipairs(rec.q) do
  local reserved = tonumber(q[3])
  local real = actual[i] or reserved
  adjust(q[1], tonumber(q[2]), real - reserved)
  q[3] = string.format('%d', real)
end
if mode == 'r' then
  -- the usual end: nothing left to remember (a repeat finds no record: 0)
  redis.call('HDEL', res, id)
  redis.call('ZREM', lease, id)
else
  -- usage from a queue that may send it again: remembered, so it counts once
  tombstone(rec)
end
return 1

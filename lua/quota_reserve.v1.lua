-- quota_reserve v1: reserve amounts on several sliding-window quotas of one
-- hash tag, all or nothing. See lua/README.md ("Quotas") for the layout.
-- KEYS[1] reservations hash, KEYS[2] lease zset, KEYS[3] index set,
-- KEYS[4..] one window hash per quota.
-- ARGV[1] reservation id, ARGV[2] lease ms, ARGV[3] tombstone ms,
-- then per quota: limit, window ms, amount.
-- Answers {1, now_ms, used_1, reset_ms_1, ...} when admitted (used includes
-- this reservation) or {0, now_ms, i, retry_ms, used_i, used_1, reset_ms_1, ...}
-- when quota i refuses (retry_ms -1: the amount alone exceeds the limit; the
-- pairs are every quota as it stands, nothing reserved).
local N = 60
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local res, lease, index = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local tomb_ms = tonumber(ARGV[3])
local n = #KEYS - 3
if n < 1 or #ARGV ~= 3 + 3 * n or not lease_ms or not tomb_ms or lease_ms < 1 or tomb_ms < 1
  or lease_ms % 1 ~= 0 or tomb_ms % 1 ~= 0 then
  return redis.error_reply('quota_reserve: bad arguments')
end

local function bucket_ms(w) return math.ceil(w / N) end

-- takes `delta` off bucket field `b` of `key` (never below zero, never
-- recreating a field that was pruned or reset)
local function refund(key, b, amount)
  if amount <= 0 then return end
  local v = tonumber(redis.call('HGET', key, b))
  if v then
    if v <= amount then redis.call('HDEL', key, b) else redis.call('HINCRBY', key, b, -amount) end
  end
end

-- leases that ran out: their holder died; the reservation is given back and a
-- tombstone remembers it so a late settle charges the real usage instead
local expired = redis.call('ZRANGEBYSCORE', lease, '-inf', now, 'LIMIT', 0, 64)
for _, rid in ipairs(expired) do
  local raw = redis.call('HGET', res, rid)
  local rec = raw and cjson.decode(raw)
  if rec and rec.s == 'R' then
    for _, q in ipairs(rec.q) do refund(q[1], q[2], tonumber(q[3])) end
    rec.s = 'E'
    redis.call('HSET', res, rid, cjson.encode(rec))
    redis.call('ZADD', lease, now + tomb_ms, rid)
  else
    redis.call('HDEL', res, rid)
    redis.call('ZREM', lease, rid)
  end
end

-- sums the buckets any window ending now can overlap, prunes older ones;
-- returns sum, the bucket fields (index -> amount) and the current index
local function load(key, w)
  local b = bucket_ms(w)
  local cur = math.floor(now / b)
  local flat = redis.call('HGETALL', key)
  local sum, fields = 0, {}
  local stale_w = false
  for i = 1, #flat, 2 do
    local f, v = flat[i], tonumber(flat[i + 1])
    if f == 'w' then
      if v ~= w then stale_w = true end
    else
      local idx = tonumber(f)
      if idx and idx >= cur - N and idx <= cur then
        sum = sum + v
        fields[idx] = v
      else
        redis.call('HDEL', key, f)
      end
    end
  end
  if stale_w then
    redis.call('DEL', key)
    return 0, {}, cur, b
  end
  return sum, fields, cur, b
end

-- ms until the newest non-empty bucket leaves the window (0 when empty)
local function reset_ms(fields, cur, b)
  for idx = cur, cur - N, -1 do
    if (fields[idx] or 0) > 0 then return (idx + N + 1) * b - now end
  end
  return 0
end

local quotas = {}
for i = 1, n do
  local limit = tonumber(ARGV[1 + 3 * i])
  local w = tonumber(ARGV[2 + 3 * i])
  local amount = tonumber(ARGV[3 + 3 * i])
  -- whole numbers only (x % 1 is NaN for NaN and +-inf): a fraction would
  -- fail HINCRBY after other quotas were charged; amounts stay exact below 2^53
  if not limit or not w or not amount or w < 1 or amount < 0 or limit < 0
    or w % 1 ~= 0 or amount % 1 ~= 0 or limit % 1 ~= 0 or amount > 2^53 then
    return redis.error_reply('quota_reserve: bad quota arguments at ' .. i)
  end
  quotas[i] = { key = KEYS[3 + i], limit = limit, w = w, amount = amount }
end

-- the same reservation again (a retried call whose answer was lost): admitted once
local again = redis.call('HGET', res, id)

for _, q in ipairs(quotas) do
  q.sum, q.fields, q.cur, q.b = load(q.key, q.w)
end

-- a refusal reports every quota as it stands (the client's x-ratelimit headers)
local function refuse(i, retry)
  local r = { 0, now, i, retry, quotas[i].sum }
  for _, q in ipairs(quotas) do
    r[#r + 1] = q.sum
    r[#r + 1] = reset_ms(q.fields, q.cur, q.b)
  end
  return r
end

if not again then
  for i, q in ipairs(quotas) do
    if q.amount > q.limit then
      return refuse(i, -1)
    end
    if q.sum + q.amount > q.limit or (q.amount == 0 and q.sum >= q.limit) then
      local need = q.sum + q.amount - q.limit
      local retry = -1
      local freed = 0
      for idx = q.cur - N, q.cur do
        freed = freed + (q.fields[idx] or 0)
        if freed >= need and freed > 0 then
          retry = (idx + N + 1) * q.b - now
          break
        end
      end
      return refuse(i, retry)
    end
  end
end

local out = { 1, now }
local rec = { s = 'R', q = {} }
local longest = 0
for i, q in ipairs(quotas) do
  if not again and q.amount > 0 then
    redis.call('HINCRBY', q.key, q.cur, q.amount)
    q.sum = q.sum + q.amount
    q.fields[q.cur] = (q.fields[q.cur] or 0) + q.amount
  end
  redis.call('HSET', q.key, 'w', q.w)
  redis.call('PEXPIRE', q.key, 2 * q.w + q.b)
  redis.call('SADD', index, q.key)
  if q.w > longest then longest = q.w end
  -- the amount as a string: cjson writes numbers with 14 digits only
  rec.q[i] = { q.key, q.cur, string.format('%d', q.amount) }
  out[#out + 1] = q.sum
  out[#out + 1] = reset_ms(q.fields, q.cur, q.b)
end
if redis.call('PTTL', index) < 2 * longest then
  redis.call('PEXPIRE', index, 2 * longest + 60000)
end
if not again then
  redis.call('HSET', res, id, cjson.encode(rec))
  redis.call('ZADD', lease, now + lease_ms, id)
end
local keep = lease_ms + tomb_ms + 60000
redis.call('PEXPIRE', res, keep)
redis.call('PEXPIRE', lease, keep)
return out

-- quota_reserve v1 (after quota_lib.v1): reserve amounts on several
-- sliding-window quotas of one hash tag, all or nothing. See lua/README.md.
-- KEYS[1] reservations hash, KEYS[2] lease zset, KEYS[3] index set,
-- KEYS[4..] one window hash per quota.
-- ARGV[1] reservation id, ARGV[2] lease ms, ARGV[3] tombstone ms,
-- then per quota: limit, window ms, amount.
-- Answers {1, now_ms, used_1, reset_ms_1, ...} when admitted (used includes
-- this reservation) or {0, now_ms, i, retry_ms, used_i, used_1, reset_ms_1, ...}
-- when quota i refuses (retry_ms -1: the amount alone exceeds the limit; the
-- pairs are every quota as it stands, nothing reserved).
local res, lease, index = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local tomb_ms = tonumber(ARGV[3])
local n = #KEYS - 3
if n < 1 or #ARGV ~= 3 + 3 * n or not whole(lease_ms) or not whole(tomb_ms)
  or lease_ms < 1 or tomb_ms < 1 then
  return redis.error_reply('quota_reserve: bad arguments')
end
local quotas = {}
for i = 1, n do
  local limit = tonumber(ARGV[1 + 3 * i])
  local w = tonumber(ARGV[2 + 3 * i])
  local amount = tonumber(ARGV[3 + 3 * i])
  -- a fraction would fail HINCRBY after other quotas were charged
  if not whole(limit) or not whole(w) or not whole(amount) or w < 1 then
    return redis.error_reply('quota_reserve: bad quota arguments at ' .. i)
  end
  quotas[i] = { key = KEYS[3 + i], limit = limit, w = w, amount = amount }
end

sweep(res, lease, tomb_ms, 64)

-- the same reservation again (a retried call whose answer was lost): admitted once
local again = redis.call('HEXISTS', res, id) == 1

for _, q in ipairs(quotas) do
  q.win = advance(q.key, q.w)
end

-- a refusal reports every quota as it stands (the client's x-ratelimit headers)
local function refuse(i, retry)
  local r = { 0, now, i, retry, quotas[i].win.sum }
  for _, q in ipairs(quotas) do
    r[#r + 1] = q.win.sum
    r[#r + 1] = reset_ms(q.win)
  end
  return r
end

-- ms until enough of the oldest buckets leave for `need` more to fit
local function retry_ms(win, need)
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

if not again then
  for i, q in ipairs(quotas) do
    local sum = q.win.sum
    if q.amount > q.limit then return refuse(i, -1) end
    if sum + q.amount > q.limit or (q.amount == 0 and sum >= q.limit) then
      return refuse(i, retry_ms(q.win, sum + q.amount - q.limit))
    end
  end
end

local out = { 1, now }
local rec = { s = 'R', q = {} }
local renew = false
for i, q in ipairs(quotas) do
  if q.win.n ~= q.win.cur then renew = true end
  add(q.win, again and 0 or q.amount, index)
  -- bucket and amount as strings: cjson writes numbers with 14 digits only
  rec.q[i] = { q.key, string.format('%d', q.win.cur), string.format('%d', q.amount) }
  out[#out + 1] = q.win.sum
  out[#out + 1] = reset_ms(q.win)
end
if not again then
  redis.call('HSET', res, id, cjson.encode(rec))
  redis.call('ZADD', lease, now + lease_ms, id)
end
if renew or redis.call('PTTL', lease) < 0 then
  local keep = lease_ms + tomb_ms + 60000
  redis.call('PEXPIRE', res, keep)
  redis.call('PEXPIRE', lease, keep)
end
return out

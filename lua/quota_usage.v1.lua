-- quota_usage v1: what every quota window of one hash tag holds now.
-- KEYS[1] index set, KEYS[2] reservations hash, KEYS[3] lease zset;
-- ARGV[1] tombstone ms. Ended leases are swept first (as quota_reserve does),
-- so a dead replica's reservations do not show. Answers
-- {now_ms, key, used, reset_ms, ...}; windows that expired leave the index.
local N = 60
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tomb_ms = tonumber(ARGV[1])
if #KEYS ~= 3 or not tomb_ms or tomb_ms < 1 then
  return redis.error_reply('quota_usage: bad arguments')
end
local res, lease = KEYS[2], KEYS[3]
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', lease, '-inf', now, 'LIMIT', 0, 1000)) do
  local raw = redis.call('HGET', res, rid)
  local rec = raw and cjson.decode(raw)
  if rec and rec.s == 'R' then
    for _, q in ipairs(rec.q) do
      local amount = tonumber(q[3])
      local v = tonumber(redis.call('HGET', q[1], q[2]))
      if v and amount > 0 then
        if v <= amount then redis.call('HDEL', q[1], q[2]) else redis.call('HINCRBY', q[1], q[2], -amount) end
      end
    end
    rec.s = 'E'
    redis.call('HSET', res, rid, cjson.encode(rec))
    redis.call('ZADD', lease, now + tomb_ms, rid)
  else
    redis.call('HDEL', res, rid)
    redis.call('ZREM', lease, rid)
  end
end
local out = { now }
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local w = tonumber(redis.call('HGET', key, 'w'))
  if not w then
    redis.call('SREM', KEYS[1], key)
  else
    local b = math.ceil(w / N)
    local cur = math.floor(now / b)
    local flat = redis.call('HGETALL', key)
    local sum, newest = 0, nil
    for i = 1, #flat, 2 do
      local idx = tonumber(flat[i])
      local v = tonumber(flat[i + 1])
      if flat[i] ~= 'w' and idx and idx >= cur - N and idx <= cur and v > 0 then
        sum = sum + v
        if not newest or idx > newest then newest = idx end
      end
    end
    local reset = 0
    if newest then reset = (newest + N + 1) * b - now end
    out[#out + 1] = key
    out[#out + 1] = sum
    out[#out + 1] = reset
  end
end
return out

-- quota_usage v1: what every quota window of one hash tag holds now.
-- KEYS[1] index set. Answers {now_ms, key, used, reset_ms, ...}; windows that
-- expired leave the index.
local N = 60
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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

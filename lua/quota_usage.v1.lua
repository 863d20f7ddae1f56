-- quota_usage v1 (after quota_lib.v1): what every quota window of one hash
-- tag holds now. KEYS[1] index set, KEYS[2] lease zset; ARGV[1] tombstone ms.
-- Ended leases are swept first, so a dead replica's reservations do not show. Answers
-- {now_ms, key, used, reset_ms, ...}; windows that expired leave the index.
local tomb_ms = tonumber(ARGV[1])
if #KEYS ~= 2 or not whole(tomb_ms) or tomb_ms < 1 then
  return redis.error_reply('quota_usage: bad arguments')
end
sweep(KEYS[2], tomb_ms, 1000)
local out = { now }
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local w = tonumber(redis.call('HGET', key, 'w'))
  if not w then
    redis.call('SREM', KEYS[1], key)
  else
    local win = advance(key, w)
    out[#out + 1] = key
    out[#out + 1] = win.sum
    out[#out + 1] = reset_ms(win)
  end
end
return out

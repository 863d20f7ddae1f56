-- key_update v1: revoke a key, or bring its expiry forward (rotation grace), after
-- checking that the record is the one the caller means.
-- KEYS[1] key record hash {k:<digest>}
-- ARGV[1] tenant   ARGV[2] consumer   ARGV[3] key id
-- ARGV[4] "revoke" | "expire"   ARGV[5] (expire) unix seconds
-- -> {"OK", field, value, ...} (the record after the change) | {"NOTFOUND", "key"}
local rec = redis.call('HMGET', KEYS[1], 'tenant', 'consumer', 'id', 'expires_at')
if rec[1] ~= ARGV[1] or rec[2] ~= ARGV[2] or rec[3] ~= ARGV[3] then
  return {'NOTFOUND', 'key'}
end
if ARGV[4] == 'revoke' then
  redis.call('HSET', KEYS[1], 'revoked', '1')
elseif ARGV[4] == 'expire' then
  local at = tonumber(ARGV[5])
  local cur = tonumber(rec[4] or '')
  if cur == nil or at < cur then
    redis.call('HSET', KEYS[1], 'expires_at', tostring(at))
  end
else
  return redis.error_reply('key_update: unknown action ' .. tostring(ARGV[4]))
end
local out = {'OK'}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do
  out[#out + 1] = all[i]
end
return out

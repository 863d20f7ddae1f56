-- key_insert v1: store a new key record under its digest, refusing a duplicate.
-- KEYS[1] key record hash {k:<digest>}
-- ARGV: field, value, field, value, ... (id, tenant, consumer, name, prefix,
--       created_at, expires_at, revoked)
-- -> {"OK"} | {"CONFLICT", "digest"}
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'CONFLICT', 'digest'}
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {'OK'}

-- key_index v2: list a stored key under its consumer, only while the consumer exists.
-- A key the lookup finds is valid only while this entry names its digest.
-- KEYS[1] consumers hash   KEYS[2] key index hash (same {t:<tenant>} slot)
-- ARGV[1] consumer name   ARGV[2] key id   ARGV[3] digest
-- -> {"OK"} (listed now, or already listed with this digest)
--  | {"NOTFOUND", "consumer"} | {"CONFLICT", "id"} (the id lists another digest)
-- On an error the caller removes the key record it stored with key_insert.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return {'NOTFOUND', 'consumer'}
end
local field = ARGV[1] .. '/' .. ARGV[2]
if redis.call('HSETNX', KEYS[2], field, ARGV[3]) == 0
  and redis.call('HGET', KEYS[2], field) ~= ARGV[3] then
  return {'CONFLICT', 'id'}
end
return {'OK'}

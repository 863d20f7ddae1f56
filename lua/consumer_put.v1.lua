-- consumer_put v1: create or replace a consumer, only while its tenant exists.
-- KEYS[1] tenant record   KEYS[2] consumers hash (same {t:<tenant>} slot)
-- ARGV[1] consumer name   ARGV[2] consumer JSON
-- -> {"OK"} | {"NOTFOUND", "tenant"}
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NOTFOUND', 'tenant'}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {'OK'}

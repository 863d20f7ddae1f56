-- tenant_delete v1: remove a tenant, its consumers and its key index in one step.
-- KEYS[1] tenant record   KEYS[2] consumers hash   KEYS[3] key index hash
-- -> {"OK", digest...} (the caller deletes the {k:<digest>} records afterwards;
--    they stop resolving at once because lookups require the tenant)
--  | {"NOTFOUND", "tenant"}
if redis.call('DEL', KEYS[1]) == 0 then
  return {'NOTFOUND', 'tenant'}
end
local out = {'OK'}
local digests = redis.call('HVALS', KEYS[3])
for i = 1, #digests do
  out[#out + 1] = digests[i]
end
redis.call('DEL', KEYS[2], KEYS[3])
return out

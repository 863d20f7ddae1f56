-- consumer_delete v1: remove a consumer and its key index entries in one step.
-- KEYS[1] consumers hash   KEYS[2] key index hash ("<consumer>/<key id>" -> digest)
-- ARGV[1] consumer name
-- -> {"OK", digest...} (the caller then deletes each {k:<digest>} record, which no
--    longer resolves: lookups require the consumer) | {"NOTFOUND", "consumer"}
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return {'NOTFOUND', 'consumer'}
end
local out = {'OK'}
local pfx = ARGV[1] .. '/'
local idx = redis.call('HGETALL', KEYS[2])
for i = 1, #idx, 2 do
  if string.sub(idx[i], 1, #pfx) == pfx then
    redis.call('HDEL', KEYS[2], idx[i])
    out[#out + 1] = idx[i + 1]
  end
end
return out

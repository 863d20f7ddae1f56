-- ledger_read v1: the usage ledger's day hashes of one hash tag (admin
-- `GET /admin/usage/report`). See lua/README.md ("Usage ledger").
-- KEYS: the day hashes `{tag}:ledger:<YYYY-MM-DD>`, in the order of the days.
-- Answers one HGETALL list per key (empty for a day with nothing).
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out

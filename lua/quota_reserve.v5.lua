-- quota_reserve v5 (after quota_lib.v5): reserve amounts on several
-- quotas of one hash tag, all or nothing. See lua/README.md.
-- v5: v4's call and answer, run by quota_lib v5 (which quota_batch shares).
-- v4: the reset counts from the newest bucket holding usage (quota_lib v4).
-- v3: a window is sliding (ms) or a calendar period (see span() in quota_lib).
-- v2: KEYS[2] is the index zset `{tag}:qidx` (v1: the set `{tag}:qkeys`).
-- KEYS[1] lease zset, KEYS[2] index zset, KEYS[3..] one window hash per quota.
-- ARGV[1] reservation id, ARGV[2] lease ms, ARGV[3] tombstone ms,
-- then per quota: limit, window (ms, or a calendar: see span()), amount.
-- Answers {1, now_ms, used_1, reset_ms_1, ..., member} when admitted (used
-- includes this reservation; member is what quota_settle takes) or
-- {0, now_ms, i, retry_ms, used_i, used_1, reset_ms_1, ...} when quota i
-- refuses (retry_ms -1: the amount alone exceeds the limit; the pairs are every
-- quota as it stands, nothing reserved).
DIRECT = true
local n = #KEYS - 2
if n < 1 or #ARGV ~= 3 + 3 * n then
  return redis.error_reply('quota_reserve: bad arguments')
end
local r, err = reserve_op(ARGV[1], ARGV[2], ARGV[3])
local ok = r ~= nil
for i = 1, n do
  if not ok then break end
  ok, err = reserve_quota(r, i, KEYS[2 + i], ARGV[1 + 3 * i], ARGV[2 + 3 * i], ARGV[3 + 3 * i])
end
if not ok then return redis.error_reply(err) end
local out = do_reserve(KEYS[1], KEYS[2], r)
flush()
return out

-- quota_settle v5 (after quota_lib.v5): replaces a reservation by the real
-- usage, once, and adds the request to the usage ledger in the same call.
-- See lua/README.md ("Quotas", "Usage ledger").
-- v5: v4's call and answer, run by quota_lib v5 (which quota_batch shares).
-- v4: the reset counts from the newest bucket holding usage (quota_lib v4).
-- v3: windows may be calendar periods; KEYS[3] is the ledger's day hash and
-- ARGV[5..7] the ledger entry; per quota also its limit and alert percentages;
-- no window at all is allowed (mode u: a request with no quota of this tag,
-- only its ledger entry); the answer lists the alerts crossed.
-- v2: KEYS[2] is the index zset `{tag}:qidx` (v1: the set `{tag}:qkeys`).
-- KEYS[1] lease zset, KEYS[2] index zset, KEYS[3] ledger hash (unused without
-- an entry, but of the same tag), KEYS[4..] one window hash per quota.
-- ARGV[1] reservation id, ARGV[2] tombstone ms, ARGV[3] "r" (ARGV[4] is the
-- member quota_reserve answered) or "u" (admitted without Redis, or nothing
-- reserved: charge the usage now; ARGV[4] empty), ARGV[5] the ledger dims
-- ('' = no entry), ARGV[6] its figures, ARGV[7] when its hash expires (unix
-- s), then per quota: window (as quota_reserve), actual amount, limit, alert
-- percentages ('' or '50,80,100': calendar windows only).
-- Answers {code, i, percent, used, ...}: see do_settle() in quota_lib.
DIRECT = true
local n = #KEYS - 3
if n < 0 or #ARGV ~= 7 + 4 * n then
  return redis.error_reply('quota_settle: bad arguments')
end
local c, err = settle_op(ARGV[1], ARGV[2], ARGV[3], ARGV[4], KEYS[3], ARGV[5], ARGV[6], ARGV[7], n)
local ok = c ~= nil
for i = 1, n do
  if not ok then break end
  ok, err = settle_quota(c, i, KEYS[3 + i], ARGV[4 + 4 * i], ARGV[5 + 4 * i], ARGV[6 + 4 * i],
    ARGV[7 + 4 * i])
end
if not ok then return redis.error_reply(err) end
settle_wants(c)
local out = do_settle(KEYS[1], KEYS[2], c)
flush()
return out

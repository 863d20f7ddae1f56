-- quota_batch v5 (after quota_lib.v5): many reservations and settlements of
-- one hash tag in one call (the gateway's group commit: see lua/README.md,
-- "Batches"), run in the order given, each exactly as quota_reserve or
-- quota_settle runs it alone at the same `now`; each window hash is read
-- and written once for the whole call, the reservations settled are looked
-- up in one ZMSCORE and removed in one ZREM (quota_lib v5).
-- KEYS[1] lease zset, KEYS[2] index zset, KEYS[3..] the window hashes and
-- ledger day hashes the operations name, by their position in KEYS.
-- ARGV[1] the number of operations, then each operation:
--   'r', id, lease ms, tombstone ms, number of quotas, then per quota: key
--        position, limit, window, amount (as quota_reserve);
--   's', id, tombstone ms, mode, member, ledger key position (0: no entry),
--        ledger dims, figures, expire at, number of quotas, then per quota:
--        key position, window, actual amount, limit, alert percentages (as
--        quota_settle).
-- Answers {now_ms, answer_1, ...}: per operation what quota_reserve or
-- quota_settle would answer alone, or {-1, error} when its own arguments are
-- bad (the others run). An error reply when the list itself is malformed:
-- then nothing ran.
local function bad(at)
  return redis.error_reply('quota_batch: bad arguments' .. (at and (' at operation ' .. at) or ''))
end
-- (locals: each operation reads a dozen of them)
local ARGV, KEYS = ARGV, KEYS
local count = tonumber(ARGV[1])
if #KEYS < 2 or not whole(count) or count < 1 then return bad() end
-- KEYS[i] for a position i >= 3, else nil
local function key_at(x)
  local i = tonumber(x)
  if i and i >= 3 and i % 1 == 0 then return KEYS[i] end
  return nil
end
local ops, answers, pos = {}, {}, 2
-- the reservations the settlements name, looked up together
local members = {}
for k = 1, count do
  local kind = ARGV[pos]
  local op, err
  if kind == 'r' then
    local n = tonumber(ARGV[pos + 4])
    if not whole(n) or pos + 4 + 4 * n > #ARGV then return bad(k) end
    op, err = reserve_op(ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3])
    if op and n < 1 then op, err = nil, 'quota_reserve: bad arguments' end
    for i = 1, n do
      if not op then break end
      local b = pos + 1 + 4 * i
      local key = key_at(ARGV[b])
      local ok
      if key then
        ok, err = reserve_quota(op, i, key, ARGV[b + 1], ARGV[b + 2], ARGV[b + 3])
      else
        err = 'quota_batch: bad key position at ' .. i
      end
      if not ok then op = nil end
    end
    if op then op.kind = 'r' end
    pos = pos + 5 + 4 * n
  elseif kind == 's' then
    local n = tonumber(ARGV[pos + 9])
    if not whole(n) or pos + 9 + 5 * n > #ARGV then return bad(k) end
    local ledger = KEYS[1]
    if ARGV[pos + 5] ~= '0' then ledger = key_at(ARGV[pos + 5]) end
    if ledger then
      op, err = settle_op(ARGV[pos + 1], ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4], ledger,
        ARGV[pos + 6], ARGV[pos + 7], ARGV[pos + 8], n)
    else
      err = 'quota_batch: bad ledger key position'
    end
    for i = 1, n do
      if not op then break end
      local b = pos + 5 + 5 * i
      local key = key_at(ARGV[b])
      local ok
      if key then
        ok, err = settle_quota(op, i, key, ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4])
      else
        err = 'quota_batch: bad key position at ' .. i
      end
      if not ok then op = nil end
    end
    if op then
      op.kind = 's'
      settle_wants(op)
      if op.mode == 'r' and op.member ~= '' then members[#members + 1] = op.member end
    end
    pos = pos + 10 + 5 * n
  else
    return bad(k)
  end
  ops[k] = op
  if not op then answers[k] = { -1, err } end
end
if pos ~= #ARGV + 1 then return bad() end
local lease, index = KEYS[1], KEYS[2]
if #members > 1 then lookup(lease, members) end
for k = 1, count do
  local op = ops[k]
  if op and op.kind == 'r' then
    answers[k] = do_reserve(lease, index, op)
  elseif op then
    answers[k] = do_settle(lease, index, op)
  end
end
flush()
local out = { now }
for k = 1, count do out[k + 1] = answers[k] end
return out

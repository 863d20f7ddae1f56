-- quota_settle v2 (after quota_lib.v2): replaces a reservation by the real
-- usage, once. See lua/README.md ("Quotas").
-- v2: KEYS[2] is the index zset `{tag}:qidx` (v1: the set `{tag}:qkeys`).
-- KEYS as quota_reserve (lease zset, index zset, windows).
-- ARGV[1] reservation id, ARGV[2] tombstone ms, ARGV[3] "r" (ARGV[4] is the
-- member quota_reserve answered) or "u" (admitted without Redis: charge the
-- usage now; ARGV[4] empty), then per quota: window ms, actual amount.
-- Answers 1 settled, 2 already charged (mode u), 3 the lease had ended (the
-- reservation was given back; the usage is charged now), 4 charged without
-- reservation, 0 nothing to settle (settled before, or never reserved).
local lease, index = KEYS[1], KEYS[2]
local id = ARGV[1]
local tomb_ms = tonumber(ARGV[2])
local mode = ARGV[3]
local member = ARGV[4]
local n = #KEYS - 2
if n < 1 or #ARGV ~= 4 + 2 * n or not whole(tomb_ms) or tomb_ms < 1
  or (mode ~= 'r' and mode ~= 'u') or id == '' then
  return redis.error_reply('quota_settle: bad arguments')
end
local actual, windows = {}, {}
for i = 1, n do
  local w = tonumber(ARGV[3 + 2 * i])
  local a = tonumber(ARGV[4 + 2 * i])
  if not whole(w) or not whole(a) or w < 1 then
    return redis.error_reply('quota_settle: bad quota arguments at ' .. i)
  end
  windows[i], actual[i] = w, a
end

-- charges the usage in the current bucket of every window
local function charge()
  for i = 1, n do
    add(advance(KEYS[2 + i], windows[i]), actual[i], index)
  end
end

if mode == 'r' and member ~= '' and redis.call('ZREM', lease, member) == 1 then
  local p = parts(member)
  for i = 1, n do
    local k = 2 + 4 * (i - 1)
    local reserved = tonumber(p[k + 2])
    if reserved then
      local delta = actual[i] - reserved
      -- usage beyond the reservation whose bucket has left the window (a long
      -- stream) still counts: in the current bucket
      if not adjust(p[k], tonumber(p[k + 1]), delta, p[k + 3]) and delta > 0 then
        add(advance(p[k], windows[i]), delta, index)
      end
    end
  end
  return 1
end
-- usage from the retry queue, which may send it twice: counted once (checked
-- first: a reserve whose answer was lost leaves an E tombstone later)
if mode == 'u' and redis.call('ZSCORE', lease, 'S\n' .. id) then return 2 end
-- a lease that ended: the reservation went back, the usage is charged now
local ended = redis.call('ZREM', lease, 'E\n' .. id) == 1
if not ended and mode == 'r' then return 0 end
charge()
if mode == 'u' then
  redis.call('ZADD', lease, now + tomb_ms, 'S\n' .. id)
  keep(lease, tomb_ms)
end
if ended then return 3 end
return 4

-- quota_settle v4 (after quota_lib.v4): replaces a reservation by the real
-- usage, once, and adds the request to the usage ledger in the same call.
-- See lua/README.md ("Quotas", "Usage ledger").
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
-- Answers {code, i, percent, used, ...}: code 1 settled, 2 already charged
-- (mode u), 3 the lease had ended (the reservation was given back; the usage
-- is charged now), 4 charged without reservation, 0 nothing to settle
-- (settled before, or never reserved); then for each alert percentage a quota
-- crossed now for the first time in its period: its index, the percentage and
-- what the window holds. The ledger entry is added exactly when the usage is
-- charged (1, 3, 4), so a settlement sent twice is counted once.
local lease, index, ledger = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local tomb_ms = tonumber(ARGV[2])
local mode = ARGV[3]
local member = ARGV[4]
local dims, figures, expire_at = ARGV[5], ARGV[6], tonumber(ARGV[7])
local n = #KEYS - 3
if n < 0 or #ARGV ~= 7 + 4 * n or not whole(tomb_ms) or tomb_ms < 1
  or (mode ~= 'r' and mode ~= 'u') or id == '' or (n == 0 and mode ~= 'u') then
  return redis.error_reply('quota_settle: bad arguments')
end
local entry
if dims ~= '' then
  entry = nine(figures)
  if not entry or not whole(expire_at) then
    return redis.error_reply('quota_settle: bad ledger entry')
  end
end
local actual, spans, limits, alerts = {}, {}, {}, {}
for i = 1, n do
  local sp = span(ARGV[4 + 4 * i])
  local a = tonumber(ARGV[5 + 4 * i])
  local limit = tonumber(ARGV[6 + 4 * i])
  if not sp or not whole(a) or not whole(limit) then
    return redis.error_reply('quota_settle: bad quota arguments at ' .. i)
  end
  local pcts = {}
  for x in string.gmatch(ARGV[7 + 4 * i], '[^,]+') do
    local p = tonumber(x)
    if not whole(p) or p < 1 or p > 100 then
      return redis.error_reply('quota_settle: bad alert at ' .. i)
    end
    pcts[#pcts + 1] = p
  end
  spans[i], actual[i], limits[i], alerts[i] = sp, a, limit, pcts
end

-- charges the usage in the current bucket of every window
local function charge()
  for i = 1, n do
    add(advance(KEYS[3 + i], spans[i]), actual[i], index)
  end
end

-- the usage was charged: the ledger entry, and the alerts it crossed
local function charged(code)
  if dims ~= '' then ledger_add(ledger, dims, entry, expire_at) end
  local out = { code }
  for i = 1, n do
    local sp = spans[i]
    if #alerts[i] > 0 and sp.cal then
      -- the window as this call left it: this period's sum (a hash of
      -- another calendar or period was not charged here: nothing to say)
      local m = redis.call('HMGET', KEYS[3 + i], 'w', 'o', 's', 'a')
      if m[1] == sp.cal and tonumber(m[2]) == sp.cur then
        local sum, sent = tonumber(m[3]) or 0, tonumber(m[4]) or 0
        local top = 0
        for _, p in ipairs(alerts[i]) do
          if p > top and sum * 100 >= p * limits[i] then top = p end
        end
        if top > sent then
          redis.call('HSET', KEYS[3 + i], 'a', top)
          out[#out + 1] = i
          out[#out + 1] = top
          out[#out + 1] = sum
        end
      end
    end
  end
  return out
end

if mode == 'r' and member ~= '' and redis.call('ZREM', lease, member) == 1 then
  local p = parts(member)
  for i = 1, n do
    local k = 2 + 4 * (i - 1)
    local reserved = tonumber(p[k + 2])
    if reserved then
      local delta = actual[i] - reserved
      -- usage beyond the reservation whose bucket has left the window (a long
      -- stream, a period that ended) still counts: in the current bucket
      if not adjust(p[k], tonumber(p[k + 1]), delta, p[k + 3]) and delta > 0 then
        add(advance(p[k], spans[i]), delta, index)
      end
    end
  end
  return charged(1)
end
-- usage from the retry queue, which may send it twice: counted once (checked
-- first: a reserve whose answer was lost leaves an E tombstone later)
if mode == 'u' and redis.call('ZSCORE', lease, 'S\n' .. id) then return { 2 } end
-- a lease that ended: the reservation went back, the usage is charged now
local ended = redis.call('ZREM', lease, 'E\n' .. id) == 1
if not ended and mode == 'r' then return { 0 } end
charge()
if mode == 'u' then
  redis.call('ZADD', lease, now + tomb_ms, 'S\n' .. id)
  keep(lease, tomb_ms)
end
if ended then return charged(3) end
return charged(4)

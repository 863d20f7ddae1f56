-- quota_usage v5 (after quota_lib.v5): one page of what the quota windows of
-- one hash tag hold now (admin `GET /admin/usage`). See lua/README.md.
-- v5: v4's call and answer, run by quota_lib v5.
-- v4: the reset counts from the newest bucket holding usage (quota_lib v4).
-- v3: calendar windows (their period's sum until its end, then 0).
-- v2: pages through the index zset instead of reading every window at once.
-- KEYS[1] index zset, KEYS[2] lease zset, KEYS[3..] windows to read by name
-- (listed or not; used 0 when gone).
-- ARGV[1] tombstone ms, ARGV[2] how many index entries to read (0: none),
-- ARGV[3] ARGV[4] the score and member the previous page ended with ('' '':
-- from the start).
-- Ended leases are swept first (up to 1000), so a dead replica's reservations
-- do not show. Index entries are read in the zset's order (their windows'
-- ends, ties by member), skipping windows that ended. Answers {now_ms, next_score,
-- next_member, key, used, reset_ms, ...}: the named windows first, then those
-- of the index; next_score '' when the index has no more. A window charged
-- while the caller pages moves to a later end, so it may show on a later page
-- again; one that stays in the index all along shows at least once.
DIRECT = true
local tomb_ms = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local after = ARGV[3]
local after_member = ARGV[4]
local after_score = tonumber(after)
if #KEYS < 2 or #ARGV ~= 4 or not whole(tomb_ms) or tomb_ms < 1 or not whole(count)
  or count > 10000 or (after ~= '' and not whole(after_score)) then
  return redis.error_reply('quota_usage: bad arguments')
end
local index = KEYS[1]
sweep(KEYS[2], tomb_ms, 1000)
local out = { now, '', '' }

-- answers whether the window is there (and adds it to the answer)
local function report(key, always)
  local v = hget(key, 'w', 's', 'e')
  local wf, sf, ef = v.w, v.s, v.e
  local w = tonumber(wf)
  if wf and not w then
    -- a calendar period: what it holds until it ends (resetting then, as
    -- reset_ms() says: 0 when it holds nothing)
    local e, s = tonumber(ef) or 0, tonumber(sf) or 0
    out[#out + 1] = key
    if now < e and s > 0 then
      out[#out + 1] = s
      out[#out + 1] = e - now
    else
      out[#out + 1] = 0
      out[#out + 1] = 0
    end
    return true
  end
  if not w then
    if always then
      out[#out + 1] = key
      out[#out + 1] = 0
      out[#out + 1] = 0
    end
    return false
  end
  local win = advance(key, span(wf))
  out[#out + 1] = key
  out[#out + 1] = win.sum
  out[#out + 1] = reset_ms(win)
  return true
end

for i = 3, #KEYS do report(KEYS[i], true) end

if count > 0 then
  -- where this page starts: right after the previous page's last entry when
  -- it is still where it was, else at the first entry ending after both its
  -- end and now (a window that ended is never listed). Ranks, not member
  -- comparisons, so the order is the zset's own.
  local first
  if after ~= '' and tonumber(redis.call('ZSCORE', index, after_member)) == after_score
    and after_score > now then
    first = redis.call('ZRANK', index, after_member) + 1
  else
    local lo = now + 1
    if after ~= '' and after_score > lo then lo = after_score end
    first = redis.call('ZCOUNT', index, '-inf', '(' .. lo)
  end
  local batch = redis.call('ZRANGE', index, first, first + count - 1, 'WITHSCORES')
  local gone = {}
  for i = 1, #batch, 2 do
    -- a window reset (deleted) before its end leaves the index
    if not report(batch[i], false) then gone[#gone + 1] = batch[i] end
  end
  if #gone > 0 then redis.call('ZREM', index, unpack(gone)) end
  if #batch == 2 * count then
    out[2] = string.format('%d', tonumber(batch[#batch]))
    out[3] = batch[#batch - 1]
  end
end
flush()
return out

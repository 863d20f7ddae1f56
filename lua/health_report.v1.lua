-- health_report v1: what replicas saw of one provider (passive failures and
-- successes from real traffic, active probe results), applied to its shared
-- health hash; answers what the hash holds afterwards. With no events it only
-- reads (the replicas' periodic refresh).
--
-- KEYS[1]  <prefix>{h:<provider>}:health
-- ARGV[1]  channel to announce a change on ('' = none), ARGV[2] the message,
-- ARGV[3]  number of events, then 7 arguments per event:
--          target ('p' = the provider, or an api token's index), kind, count,
--          error text ('' = none), a, b, c
--   kind 'f'  count failures; a = failures that eject, b = window ms,
--             c = first ejection ms (doubles on a repeat, capped at 300 s)
--   kind 's'  a success: the consecutive failures start again from zero
--   kind 'po' a probe succeeded; a = successes that end an ejection
--   kind 'pf' a probe failed; a = failures that eject, b = how long (renewed
--             by every further failed probe)
--
-- Fields per target t: t:f consecutive failures, t:r times of the recent
-- failures (comma list, at most a), t:u ejected until (ms), t:a when that
-- ejection began, t:n ejections in a row, t:s source (passive | active),
-- t:e last error, t:ok / t:ko consecutive probe successes / failures.
-- Answers {now_ms, changed, field, value, field, value, ...}: changed is 1 when
-- this call began an ejection, 2 when it ended one (3 both, 0 neither).
--
-- Announced on ARGV[1]: an ejection, its end, and a target starting to count
-- failures (so replicas holding a stale copy send their successes, which reset
-- the count: consecutive means across the fleet).

local CAP_MS = 300000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local n = tonumber(ARGV[3])
if #KEYS ~= 1 or not n or n < 0 or #ARGV ~= 3 + 7 * n then
  return redis.error_reply('health_report: bad arguments')
end

local function num(tg, f)
  return tonumber(redis.call('HGET', key, tg .. ':' .. f)) or 0
end

local changed = 0
local notify = false

local function eject(tg, base, src, doubling)
  local u = num(tg, 'u')
  if u > now then
    -- already out: an active hold is renewed, a passive ejection is not extended
    if not doubling and now + base > u then
      redis.call('HSET', key, tg .. ':u', now + base, tg .. ':s', src)
    end
    return
  end
  local times = num(tg, 'n')
  local dur = base
  if doubling then
    local cap = math.max(CAP_MS, base)
    if u > 0 and now - u <= cap then times = times + 1 else times = 1 end
    dur = math.min(base * 2 ^ (times - 1), cap)
  end
  redis.call('HSET', key, tg .. ':u', now + dur, tg .. ':a', now, tg .. ':n', times,
    tg .. ':s', src, tg .. ':r', '')
  if changed % 2 == 0 then changed = changed + 1 end
end

-- every event is checked before any is applied: a bad one changes nothing
local KINDS = { f = true, s = true, po = true, pf = true }
for i = 0, n - 1 do
  local o = 4 + 7 * i
  local count, a, b, c = tonumber(ARGV[o + 2]), tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]),
    tonumber(ARGV[o + 6])
  if not KINDS[ARGV[o + 1]] or ARGV[o] == '' then
    return redis.error_reply('health_report: unknown event kind or empty target')
  end
  if not count or not a or not b or not c or count < 1 or a < 1 or b < 0 or c < 0 then
    return redis.error_reply('health_report: bad event')
  end
end

for i = 0, n - 1 do
  local o = 4 + 7 * i
  local tg, kind, count, err = ARGV[o], ARGV[o + 1], tonumber(ARGV[o + 2]), ARGV[o + 3]
  local a, b, c = tonumber(ARGV[o + 4]), tonumber(ARGV[o + 5]), tonumber(ARGV[o + 6])
  if err ~= '' then
    redis.call('HSET', key, tg .. ':e', err)
  end
  if kind == 'f' then
    local ejected = num(tg, 'u') > now
    if redis.call('HINCRBY', key, tg .. ':f', count) == count and not ejected then
      notify = true
    end
    redis.call('HSET', key, tg .. ':ok', 0)
    -- failures while ejected (requests that were already on their way) are
    -- not held against the target's next period
    if not ejected then
      local recent = {}
      for s in string.gmatch(redis.call('HGET', key, tg .. ':r') or '', '%d+') do
        local at = tonumber(s)
        if at > now - b then recent[#recent + 1] = at end
      end
      for _ = 1, count do
        recent[#recent + 1] = now
      end
      while #recent > a do
        table.remove(recent, 1)
      end
      if #recent >= a then
        eject(tg, c, 'passive', true)
      else
        redis.call('HSET', key, tg .. ':r', table.concat(recent, ','))
      end
    end
  elseif kind == 's' then
    if num(tg, 'f') > 0 then
      redis.call('HSET', key, tg .. ':f', 0, tg .. ':r', '')
    end
  elseif kind == 'po' then
    local ok = redis.call('HINCRBY', key, tg .. ':ok', count)
    -- traffic failures stay counted: /models may answer while chat fails
    redis.call('HSET', key, tg .. ':ko', 0)
    if ok >= a and num(tg, 'u') > now then
      redis.call('HSET', key, tg .. ':u', now)
      if changed < 2 then changed = changed + 2 end
    end
  elseif kind == 'pf' then
    local ko = redis.call('HINCRBY', key, tg .. ':ko', count)
    redis.call('HSET', key, tg .. ':ok', 0)
    if redis.call('HINCRBY', key, tg .. ':f', count) == count and num(tg, 'u') <= now then
      notify = true
    end
    if ko >= a then
      eject(tg, b, 'active', false)
    end
  end
end

if n > 0 then
  -- a provider nobody reports on any more leaves no trace after a day
  redis.call('PEXPIRE', key, 86400000)
end
if (changed > 0 or notify) and ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
local out = { now, changed }
for _, v in ipairs(redis.call('HGETALL', key)) do
  out[#out + 1] = v
end
return out

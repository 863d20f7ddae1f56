-- busy_sync v1: the fleet's in-flight requests per provider, for the
-- least_busy balancer. Each replica writes its own counts a few times a second
-- and reads the others' sums; a replica that stopped writing (killed, scaled
-- down) stops counting after stale_ms.
--
-- KEYS[1]  <prefix>{busy}:inflight, a hash: "<replica>|<provider>" -> count,
--          "<replica>|" -> when that replica last wrote (ms)
-- ARGV[1]  this replica's id, ARGV[2] stale_ms, then pairs provider, count
-- Answers {provider, sum over the other live replicas, ...}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, me, stale = KEYS[1], ARGV[1], tonumber(ARGV[2])
if #KEYS ~= 1 or not stale or #ARGV % 2 ~= 0 or me == '' or string.find(me, '|', 1, true) then
  return redis.error_reply('busy_sync: bad arguments')
end

local all = redis.call('HGETALL', key)
local seen, counts = {}, {}
for i = 1, #all, 2 do
  local r, p = string.match(all[i], '^([^|]*)|(.*)$')
  if r then
    if p == '' then
      seen[r] = tonumber(all[i + 1])
    else
      counts[#counts + 1] = { all[i], r, p, tonumber(all[i + 1]) or 0 }
    end
  end
end

-- this replica's counts replace what it wrote before
local mine = {}
for i = 3, #ARGV, 2 do
  mine[ARGV[i]] = tonumber(ARGV[i + 1]) or 0
end
local sums = {}
for _, c in ipairs(counts) do
  local field, r, p, n = c[1], c[2], c[3], c[4]
  if r == me then
    if not mine[p] or mine[p] == 0 then redis.call('HDEL', key, field) end
  elseif (seen[r] or 0) < now - stale then
    redis.call('HDEL', key, field)
  else
    sums[p] = (sums[p] or 0) + n
  end
end
for r, at in pairs(seen) do
  if r ~= me and at < now - stale then redis.call('HDEL', key, r .. '|') end
end
for p, n in pairs(mine) do
  if n > 0 then redis.call('HSET', key, me .. '|' .. p, n) end
end
redis.call('HSET', key, me .. '|', now)
redis.call('PEXPIRE', key, math.max(stale * 10, 60000))

local out = {}
for p, n in pairs(sums) do
  out[#out + 1] = p
  out[#out + 1] = n
end
return out

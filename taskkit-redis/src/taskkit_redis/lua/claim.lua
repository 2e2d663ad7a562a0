-- claim: take up to `limit` claimable tasks of the group for one worker, in due order.
-- Claimable: QUEUED and due, or RUNNING with an expired lease (reclaimed here, in the same
-- atomic step: there is no separate recovery scan). A reclaimed task whose deliveries are
-- exhausted becomes DEAD ("worker lost") instead.
-- ARGV[5] worker, [6] limit, [7] lease seconds, [8] max deliveries, [9] dead-letter count
-- cap, [10] dead-letter max age (seconds).
-- Returns {next_due or "", {{id, HGETALL}...} claimed, {{id, HGETALL}...} dead-lettered}.
local worker, limit, lease = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local max_deliveries, dead_cap, dead_age = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local now, t = server_time()
local now_s = fmt(now)

-- The earliest lease still running, read before this call adds its own leases.
local next_due = nil
local live = redis.call('ZRANGEBYSCORE', LEASES, '(' .. now_s, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if live[2] then next_due = tonumber(live[2]) end

local candidates, dead = {}, {}

-- Expired leases: their workers died, stalled or were cut off.
local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now_s, 'LIMIT', 0, limit + 100)
for _, id in ipairs(expired) do
  local key = record_key(id)
  local f = redis.call('HMGET', key, 'st', 'dl', 'du', 'qm')
  if f[1] ~= 'running' then
    redis.call('ZREM', LEASES, id)  -- stale entry (the record expired or was removed)
  elseif (tonumber(f[2]) or 0) >= max_deliveries then
    local ttl = math.min(record_ttl(key), dead_age)
    finish(id, 'dead', 'e', 'worker lost', now, ttl)
    redis.call('ZADD', DEAD, now_s, id)
    dead[#dead + 1] = {id, redis.call('HGETALL', key)}
  else
    candidates[#candidates + 1] = {id, tonumber(f[3]) or 0, f[4] or '', true}
  end
end

-- Due queued tasks; members sort by "<created>|<id>" within one due time.
local queued = redis.call('ZRANGEBYSCORE', QUEUE, '-inf', now_s, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #queued, 2 do
  local member = queued[i]
  local bar = string.find(member, '|', 1, true) or 0
  candidates[#candidates + 1] = {string.sub(member, bar + 1), tonumber(queued[i + 1]), member, false}
end

table.sort(candidates, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end)

local claims = {}
for _, c in ipairs(candidates) do
  if #claims >= limit then break end
  local id = c[1]
  local key = record_key(id)
  local ok = true
  if c[4] then
    drop_lease(key, id)
  else
    redis.call('ZREM', QUEUE, c[3])
    ok = redis.call('HGET', key, 'st') == 'queued'  -- else a stale queue entry: dropped
  end
  if ok then
    -- The sequence makes tokens unique; the server time keeps them unique across a data
    -- rollback (AOF restored from an older copy).
    local token = redis.call('INCR', SEQ) .. '-' .. t[1] .. '.' .. t[2]
    local expires = fmt(now + lease)
    redis.call('HINCRBY', key, 'dl', 1)
    redis.call('HSET', key, 'st', 'running', 'tk', token, 'wk', worker, 'le', expires)
    redis.call('ZADD', LEASES, expires, id)
    redis.call('SADD', worker_key(worker), id)
    claims[#claims + 1] = {id, redis.call('HGETALL', key)}
  end
end

-- More may be claimable at once (beyond the limit), or at the next due time or lease expiry.
if redis.call('ZRANGEBYSCORE', QUEUE, '-inf', now_s, 'LIMIT', 0, 1)[1]
    or redis.call('ZRANGEBYSCORE', LEASES, '-inf', now_s, 'LIMIT', 0, 1)[1] then
  next_due = now
else
  local first = redis.call('ZRANGE', QUEUE, 0, 0, 'WITHSCORES')
  if first[2] and (next_due == nil or tonumber(first[2]) < next_due) then
    next_due = tonumber(first[2])
  end
end

if #dead > 0 then
  -- Dead letters are bounded by age and by count.
  local cutoff = fmt(now - dead_age)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', DEAD, '-inf', cutoff)) do
    if redis.call('HGET', record_key(id), 'st') == 'dead' then redis.call('DEL', record_key(id)) end
  end
  redis.call('ZREMRANGEBYSCORE', DEAD, '-inf', cutoff)
  local excess = redis.call('ZCARD', DEAD) - dead_cap
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', DEAD, 0, excess - 1)) do
      redis.call('DEL', record_key(id), notify_key(id))
      if INDEX_PREFIX ~= '' then redis.call('DEL', INDEX_PREFIX .. id) end
    end
    redis.call('ZREMRANGEBYRANK', DEAD, 0, excess - 1)
  end
end

return {next_due and fmt(next_due) or '', claims, dead}

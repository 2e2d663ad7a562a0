-- claim: take up to `limit` claimable tasks of the group for one worker, in due order.
-- Claimable: QUEUED and due, or RUNNING with an expired lease (reclaimed here, in the same
-- atomic step: there is no separate recovery scan). A reclaimed task whose deliveries are
-- exhausted becomes DEAD ("worker lost") instead.
-- ARGV[5] worker, [6] limit, [7] lease seconds, [8] max deliveries, [9] dead-letter count
-- cap, [10] dead-letter max age (seconds).
-- Returns {next_due or "", {{id, name, data, due, created, scheduled, retry count, ttl,
-- timeout, deliveries, token, lease expiry, worker, headers}...} claimed, {{id, HGETALL}...}
-- dead}.
local worker, limit, lease = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local max_deliveries, dead_cap, dead_age = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local now, t = server_time()
local now_s = fmt(now)
local next_due = nil
local more_now = false  -- claimable work left behind by this call

local function earlier(score)
  if score and (next_due == nil or score < next_due) then next_due = score end
end

local candidates, dead = {}, {}

-- Leases, earliest expiry first. Only when the earliest has expired is there anything to
-- reclaim; otherwise it is the next time work may become claimable.
local first_lease = redis.call('ZRANGE', LEASES, 0, 0, 'WITHSCORES')
if first_lease[2] and tonumber(first_lease[2]) <= now then
  local fetch = limit + 100
  local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now_s, 'LIMIT', 0, fetch)
  if #expired == fetch then more_now = true end
  for _, id in ipairs(expired) do
    local key = record_key(id)
    local f = redis.call('HMGET', key, 'st', 'wk', 'qm', 'dl', 'du', 'ttl')
    if f[1] ~= 'running' then
      redis.call('ZREM', LEASES, id)  -- stale entry (the record expired or was removed)
    elseif (tonumber(f[4]) or 0) >= max_deliveries then
      bury(id, f, 'worker lost', now, ttl_of(f[6]), dead_age)
      dead[#dead + 1] = {id, redis.call('HGETALL', key)}
    else
      candidates[#candidates + 1] = {id, tonumber(f[5]) or 0, f[3] or '', 'lease', f[2]}
    end
  end
  -- The earliest lease still running (this call's own leases are added later).
  local live = redis.call('ZRANGEBYSCORE', LEASES, '(' .. now_s, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  earlier(tonumber(live[2]))
else
  earlier(tonumber(first_lease[2]))
end

-- Due queued tasks; members sort by "<created>|<id>" within one due time.
if limit > 0 then
  local queued = redis.call('ZRANGEBYSCORE', QUEUE, '-inf', now_s, 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #queued, 2 do
    local member = queued[i]
    local bar = string.find(member, '|', 1, true) or 0
    candidates[#candidates + 1] = {string.sub(member, bar + 1), tonumber(queued[i + 1]), member, 'queue'}
  end
end

table.sort(candidates, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end)

local claims = {}
local expires = fmt(now + lease)
for _, c in ipairs(candidates) do
  if #claims >= limit then
    if c[4] == 'lease' then more_now = true end  -- an expired lease left for the next call
  else
    local id = c[1]
    local key = record_key(id)
    local fields = redis.call('HGETALL', key)
    local record = {}
    for i = 1, #fields, 2 do record[fields[i]] = i + 1 end
    local state = record['st'] and fields[record['st']]
    local ok
    if c[4] == 'lease' then
      ok = state == 'running'
      if ok and c[5] then redis.call('SREM', worker_key(c[5]), id) end
    else
      redis.call('ZREM', QUEUE, c[3])
      ok = state == 'queued'  -- else a stale queue entry: dropped
    end
    if ok then
      -- The sequence makes tokens unique; the server time keeps them unique across a data
      -- rollback (AOF restored from an older copy).
      local token = redis.call('INCR', SEQ) .. '-' .. t[1] .. '.' .. t[2]
      local deliveries = tostring((tonumber(record['dl'] and fields[record['dl']]) or 0) + 1)
      redis.call('HSET', key, 'st', 'running', 'tk', token, 'wk', worker, 'le', expires,
        'dl', deliveries)
      redis.call('ZADD', LEASES, expires, id)
      redis.call('SADD', worker_key(worker), id)
      -- Answer the task's fields in a fixed order (see _codec.CLAIM_FIELDS).
      local function v(name) return record[name] and fields[record[name]] or '' end
      claims[#claims + 1] = {id, v('n'), v('d'), v('du'), v('cr'), v('sc'), v('rc'), v('ttl'),
        v('to'), deliveries, token, expires, worker, v('h')}
    end
  end
end

-- More queued work due now (beyond the limit), or the next due time.
local first = redis.call('ZRANGE', QUEUE, 0, 0, 'WITHSCORES')
if first[2] then
  if tonumber(first[2]) <= now then more_now = true else earlier(tonumber(first[2])) end
end
if more_now then next_due = now end

if #dead > 0 then trim_dead(now, dead_age, dead_cap) end

return {next_due and fmt(next_due) or '', claims, dead}

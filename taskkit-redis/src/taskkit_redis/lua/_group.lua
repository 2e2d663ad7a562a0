-- Prelude of every per-group script (prepended when the scripts are loaded).
--
-- Every key a group script touches carries the group's hash tag "{prefix:group}" (BASE), so
-- the whole script runs in one cluster slot. KEYS[1] is always the group's queue key: it
-- routes the call and lets Redis check the slot. The other keys derive from BASE.
--
-- ARGV[1] BASE            "{prefix:group}"
-- ARGV[2] INDEX_PREFIX    "prefix:i:" in single-node mode, where the script also maintains the
--                         id -> group index (another slot); "" in cluster mode, where the
--                         client maintains it with a second command.
-- ARGV[3] PUBLISH         "PUBLISH" (single node) or "SPUBLISH" (cluster, sharded channel)
-- ARGV[4] GROUP           the group name (the index's value)
local BASE, INDEX_PREFIX, PUBLISH, GROUP = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local QUEUE = BASE .. ':q'      -- zset: queued task members ("<created>|<id>") by due time
local LEASES = BASE .. ':l'     -- zset: running task ids by lease expiry
local DEAD = BASE .. ':dead'    -- zset: dead-letter ids by the time they died
local MARKS = BASE .. ':marks'  -- hash: schedule marks of entries firing into this group
local SEQ = BASE .. ':seq'      -- counter: fencing token sequence
local WAKE = BASE .. ':wake'    -- channel: "work may have arrived"

local function record_key(id) return BASE .. ':t:' .. id end
local function worker_key(worker) return BASE .. ':w:' .. worker end
local function notify_key(id) return BASE .. ':o:' .. id end

-- Finished counts (Backend.finished_counts): a hash per FINISHED_BUCKET seconds of the
-- server clock (taskkit.backend.FINISHED_BUCKET), field = finished state, value = count.
-- Each lives a little over the longest window (an hour) past its creation.
local FINISHED_BUCKET, FINISHED_KEPT_MS = 10, 3720000
local function finished_key(bucket) return BASE .. ':fc:' .. string.format('%d', bucket) end

-- Every time decision uses the server's clock, so hosts with skewed clocks agree.
local function server_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000, t
end

-- Times travel as decimal strings: tostring() of a Lua number keeps only 14 digits.
local function fmt(x) return string.format('%.6f', x) end

local function to_ms(seconds)
  local ms = math.floor(seconds * 1000)
  if ms < 1 then ms = 1 end
  return ms
end

local function wake() redis.call(PUBLISH, WAKE, '1') end

-- Count one task that reached the finished ``state`` at ``now``, in the write that finishes it.
local function count_finished(state, now)
  local key = finished_key(math.floor(now / FINISHED_BUCKET))
  if redis.call('HINCRBY', key, state, 1) == 1 then redis.call('PEXPIRE', key, FINISHED_KEPT_MS) end
end

-- Store a new QUEUED record from three ARGV values: id, header, data. The header holds
-- name, due, created, scheduled, retry count, ttl, timeout and the task headers' JSON text
-- ("" for none), separated by \31 (none of them can contain it: names are printable ASCII,
-- JSON escapes control characters, the rest are numbers).
local function create_record(id, header, data)
  local h, start = {}, 1
  while true do
    local at = string.find(header, '\31', start, true)
    if not at then h[#h + 1] = string.sub(header, start) break end
    h[#h + 1] = string.sub(header, start, at - 1)
    start = at + 1
  end
  -- Queue members sort by creation time, then id, among tasks due at the same time.
  local member = string.format('%020.6f', tonumber(h[3])) .. '|' .. id
  local key = record_key(id)
  redis.call('HSET', key, 'id', id, 'qm', member, 'n', h[1], 'd', data,
    'du', h[2], 'cr', h[3], 'sc', h[4], 'rc', h[5], 'ttl', h[6], 'to', h[7], 'dl', '0',
    'st', 'queued')
  -- Most tasks carry no headers: their records get no field for them.
  if h[8] and h[8] ~= '' then redis.call('HSET', key, 'h', h[8]) end
  redis.call('ZADD', QUEUE, h[2], member)
  -- No stale "finished" token can be waiting for a reused id: a notification list never
  -- outlives the record it belongs to (its TTL is set with the record's, and shorter).
end

-- Whether ``id`` is free for a new record of this group. In single-node mode it also takes
-- the id in the index: a fresh index entry proves no record exists (index entry and record
-- are written and expire together), an entry of another group means the id is taken.
local function id_is_free(id)
  if INDEX_PREFIX ~= '' then
    local previous = redis.call('SET', INDEX_PREFIX .. id, GROUP, 'NX', 'GET')
    if not previous then return true end
    if previous ~= GROUP then return false end
  end
  return redis.call('EXISTS', record_key(id)) == 0
end

local function is_current(fields, token)
  return fields[1] == 'running' and fields[2] == token
end

-- Detach a task from its lease and its worker's set (``worker`` may be false).
local function drop_lease(key, id, worker)
  if worker then redis.call('SREM', worker_key(worker), id) end
  redis.call('HDEL', key, 'tk', 'wk', 'le')
  redis.call('ZREM', LEASES, id)
end

-- Move a task to a finished state: no lease, no queue entry, a native TTL on the record (and
-- on its index entry), and a token on its notification list for result waiters.
-- ``f`` holds the record's {state, worker, queue member} as read by the caller.
local function finish(id, f, state, field, value, now, ttl_seconds)
  local key = record_key(id)
  if f[2] then redis.call('SREM', worker_key(f[2]), id) end
  if f[1] == 'running' then
    redis.call('ZREM', LEASES, id)
  elseif f[1] == 'queued' and f[3] then
    redis.call('ZREM', QUEUE, f[3])
  end
  redis.call('HDEL', key, 'tk', 'wk', 'le', 'cx', 'r', 'e')
  if field then
    redis.call('HSET', key, 'st', state, 'f', fmt(now), field, value)
  else
    redis.call('HSET', key, 'st', state, 'f', fmt(now))
  end
  count_finished(state, now)
  local ms = to_ms(ttl_seconds)
  redis.call('PEXPIRE', key, ms)
  if INDEX_PREFIX ~= '' then redis.call('PEXPIRE', INDEX_PREFIX .. id, ms) end
  local notify = notify_key(id)
  redis.call('RPUSH', notify, '1')
  redis.call('PEXPIRE', notify, math.min(ms, 60000))
  -- asyncio waiters subscribe to a channel of the list's name (taskkit_redis._aio_listener).
  redis.call(PUBLISH, notify, '1')
end

local function ttl_of(value)
  return tonumber(value) or 604800
end

-- Queue a RUNNING task again at ``due`` with ``error`` as its last error (retry, defer).
-- ``f`` holds the record's {state, worker, queue member, token, ttl, retry count,
-- deliveries}. A retry counts itself and starts a fresh attempt (deliveries 0); a defer
-- keeps the retry count and takes back this claim's delivery.
local function requeue(key, id, f, due, error, retried)
  drop_lease(key, id, f[2])
  if retried then
    redis.call('HSET', key, 'st', 'queued', 'du', due, 'e', error, 'dl', '0',
      'rc', tostring((tonumber(f[6]) or 0) + 1))
  else
    redis.call('HSET', key, 'st', 'queued', 'du', due, 'e', error,
      'dl', tostring(math.max(0, (tonumber(f[7]) or 1) - 1)))
  end
  redis.call('ZADD', QUEUE, due, f[3])
end

-- Make a task a dead letter with ``reason``: finished, indexed by the time it died, and kept
-- for its TTL or the dead-letter age, whichever is shorter. ``f`` as for ``finish``.
local function bury(id, f, reason, now, ttl_seconds, dead_age)
  finish(id, f, 'dead', 'e', reason, now, math.min(ttl_seconds, dead_age))
  redis.call('ZADD', DEAD, fmt(now), id)
end

-- After a bury: dead letters are bounded by age and by count (the oldest go first).
local function trim_dead(now, dead_age, dead_cap)
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

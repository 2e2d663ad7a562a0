-- finish: write outcomes of RUNNING tasks, each fenced by its token, in one call.
-- ARGV[5..] five values per outcome: id, token, state, field, value, where state is
--   "succeeded" / "failed" / "discarded" / "cancelled": the task finishes with ``field``
--     ("r" result or "e" error) set to ``value``;
--   "queued": a retry: the task is queued again at due time ``field`` with the error text
--     ``value``, retry count + 1 and deliveries reset.
-- Returns a string with one character per outcome: "1" written, "0" stale token (unchanged).
local now = nil
local any_retry = false
local written = {}
for i = 5, #ARGV, 5 do
  local id, token, state = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = record_key(id)
  local f = redis.call('HMGET', key, 'st', 'wk', 'qm', 'tk', 'ttl', 'rc')
  if f[1] ~= 'running' or f[4] ~= token then
    written[#written + 1] = '0'
  elseif state == 'queued' then
    local due = ARGV[i + 3]
    drop_lease(key, id, f[2])
    redis.call('HSET', key, 'st', 'queued', 'du', due, 'e', ARGV[i + 4], 'dl', '0',
      'rc', tostring((tonumber(f[6]) or 0) + 1))
    redis.call('ZADD', QUEUE, due, f[3])
    any_retry = true
    written[#written + 1] = '1'
  else
    now = now or server_time()
    finish(id, f, state, ARGV[i + 3], ARGV[i + 4], now, ttl_of(f[5]))
    written[#written + 1] = '1'
  end
end
if any_retry then wake() end
return table.concat(written)

-- finish: end claims of RUNNING tasks, each fenced by its token, in one call
-- (Backend.record_outcomes; every other end of a claim derives from it).
-- ARGV[5] dead-letter count cap, [6] dead-letter max age (seconds), both for "dead".
-- ARGV[7..] five values per outcome: id, token, state, field, value, where state is
--   "succeeded" / "failed" / "discarded" / "cancelled" / "dead": the task finishes with
--     ``field`` ("r" result or "e" error) set to ``value``; "dead" also makes it a dead letter;
--   "queued" (a retry) or "deferred" (a defer): the task is queued again at due time
--     ``field`` with the error text ``value``; a retry counts itself and resets the
--     deliveries, a defer keeps the retry count and takes back this claim's delivery.
-- Returns a string with one character per outcome: "1" written, "0" stale token (unchanged).
local dead_cap, dead_age = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = nil
local requeued, buried = false, false
local written = {}
for i = 7, #ARGV, 5 do
  local id, token, state, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = record_key(id)
  local f = redis.call('HMGET', key, 'st', 'wk', 'qm', 'tk', 'ttl', 'rc', 'dl')
  if f[1] ~= 'running' or f[4] ~= token then
    written[#written + 1] = '0'
  else
    if state == 'queued' or state == 'deferred' then
      requeue(key, id, f, field, value, state == 'queued')
      requeued = true
    else
      now = now or server_time()
      if state == 'dead' then
        bury(id, f, value, now, ttl_of(f[5]), dead_age)
        buried = true
      else
        finish(id, f, state, field, value, now, ttl_of(f[5]))
      end
    end
    written[#written + 1] = '1'
  end
end
if buried then trim_dead(now, dead_age, dead_cap) end
if requeued then wake() end
return table.concat(written)

-- cancel: QUEUED -> CANCELLED; RUNNING -> cancel request (renew reports it to the holder).
-- ARGV[5] id, [6] reason. Returns {answer, record TTL in ms}; answer is "cancelled",
-- "requested", "finished" or "not_found".
local id = ARGV[5]
local key = record_key(id)
local f = redis.call('HMGET', key, 'st', 'wk', 'qm', 'ttl')
local state = f[1]
if not state then return {'not_found', 0} end
if state == 'queued' then
  local ttl = ttl_of(f[4])
  finish(id, f, 'cancelled', 'e', ARGV[6], server_time(), ttl)
  return {'cancelled', to_ms(ttl)}
end
if state == 'running' then
  redis.call('HSET', key, 'cx', '1')
  return {'requested', 0}
end
return {'finished', 0}

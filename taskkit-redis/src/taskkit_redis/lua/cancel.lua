-- cancel: QUEUED -> CANCELLED; RUNNING -> cancel request (renew reports it to the holder).
-- ARGV[5] id, [6] reason. Returns {answer, record TTL in ms}; answer is "cancelled",
-- "requested", "finished" or "not_found".
local id = ARGV[5]
local key = record_key(id)
local state = redis.call('HGET', key, 'st')
if not state then return {'not_found', 0} end
if state == 'queued' then
  local ttl = record_ttl(key)
  finish(id, 'cancelled', 'e', ARGV[6], server_time(), ttl)
  return {'cancelled', to_ms(ttl)}
end
if state == 'running' then
  redis.call('HSET', key, 'cx', '1')
  return {'requested', 0}
end
return {'finished', 0}

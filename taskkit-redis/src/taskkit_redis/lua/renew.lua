-- renew: extend current leases. ARGV[5] lease seconds, then (id, token) pairs.
-- Returns per pair: 0 lost (stale token), 1 extended, 2 extended with a cancel request pending.
local lease = tonumber(ARGV[5])
local now = server_time()
local expires = fmt(now + lease)
local answers = {}
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  local key = record_key(id)
  local f = redis.call('HMGET', key, 'st', 'tk', 'cx')
  if is_current(f, ARGV[i + 1]) then
    redis.call('HSET', key, 'le', expires)
    redis.call('ZADD', LEASES, expires, id)
    answers[#answers + 1] = f[3] and 2 or 1
  else
    answers[#answers + 1] = 0
  end
end
return answers

-- worker_heartbeat: renew a live worker's entry (Backend.heartbeat_worker).
-- KEYS[1] the registry, KEYS[2] the worker's hash. ARGV[1] id, [2] tasks held, [3] seconds
-- the entry lives unrenewed. Returns 1, or 0 when the entry aged out or was removed (it is
-- then gone for good: the worker registers again).
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expires or tonumber(expires) <= now or redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[2])
  return 0
end
local after = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'heartbeat', string.format('%.6f', now), 'held', ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.max(1, math.ceil(after * 1000)))
redis.call('ZADD', KEYS[1], string.format('%.6f', now + after), ARGV[1])
return 1

-- retry: RUNNING -> QUEUED at a new due time, retry_count + 1, deliveries reset; fenced.
-- ARGV[5] id, [6] token, [7] due, [8] error text. Returns 1, or 0 for a stale token.
local id, token, due = ARGV[5], ARGV[6], ARGV[7]
local key = record_key(id)
local f = redis.call('HMGET', key, 'st', 'tk', 'wk', 'qm', 'rc')
if not is_current(f, token) then return 0 end
drop_lease(key, id, f[3])
redis.call('HSET', key, 'st', 'queued', 'du', due, 'e', ARGV[8], 'dl', '0',
  'rc', tostring((tonumber(f[5]) or 0) + 1))
redis.call('ZADD', QUEUE, due, f[4])
wake()
return 1

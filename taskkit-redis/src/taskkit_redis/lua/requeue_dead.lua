-- requeue_dead: DEAD -> QUEUED, due now, deliveries 0 (an operator's explicit action).
-- ARGV[5] id. Returns 1, or 0 when the task is not a dead letter.
local id = ARGV[5]
local key = record_key(id)
if redis.call('HGET', key, 'st') ~= 'dead' then return 0 end
local now = fmt(server_time())
redis.call('PERSIST', key)
if INDEX_PREFIX ~= '' then redis.call('PERSIST', INDEX_PREFIX .. id) end
redis.call('HDEL', key, 'e', 'f')
redis.call('HSET', key, 'st', 'queued', 'du', now, 'dl', '0')
redis.call('ZREM', DEAD, id)
redis.call('ZADD', QUEUE, now, redis.call('HGET', key, 'qm'))
redis.call('DEL', notify_key(id))
wake()
return 1

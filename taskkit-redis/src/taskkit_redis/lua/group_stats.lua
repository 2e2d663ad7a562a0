-- group_stats: the group's figures at one instant of the server clock (Backend.group_stats).
-- ARGV[5] dead-letter max age (seconds): older dead-letter entries are not counted (their
-- records expired).
-- Returns {now, queued due now, queued in all, running, dead letters, oldest due time or ""}.
local dead_age = tonumber(ARGV[5])
local now = server_time()
local now_s = fmt(now)
local first = redis.call('ZRANGE', QUEUE, 0, 0, 'WITHSCORES')
local oldest = ''
if first[2] and tonumber(first[2]) <= now then oldest = first[2] end
return {now_s, redis.call('ZCOUNT', QUEUE, '-inf', now_s), redis.call('ZCARD', QUEUE),
  redis.call('ZCARD', LEASES), redis.call('ZCOUNT', DEAD, '(' .. fmt(now - dead_age), '+inf'),
  oldest}

-- group_info: {queued, running, claimable now (0/1)}, read atomically.
local now_s = fmt(server_time())
local claimable = (redis.call('ZRANGEBYSCORE', QUEUE, '-inf', now_s, 'LIMIT', 0, 1)[1]
  or redis.call('ZRANGEBYSCORE', LEASES, '-inf', now_s, 'LIMIT', 0, 1)[1]) and 1 or 0
return {redis.call('ZCARD', QUEUE), redis.call('ZCARD', LEASES), claimable}

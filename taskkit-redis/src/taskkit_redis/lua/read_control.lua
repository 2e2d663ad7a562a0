-- read_control: events after a sequence number, and the data-set epoch.
-- KEYS[1] events zset, KEYS[2] epoch key. ARGV[1] after_seq, [2] a fresh epoch to store if
-- the key is missing (a missing epoch means Redis lost its data, or this is the first run).
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  redis.call('SET', KEYS[2], ARGV[2])
  epoch = ARGV[2]
end
return {epoch, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')}

-- publish_control: append a control event. KEYS[1] events zset, KEYS[2] last sequence.
-- ARGV[1] kind, [2] groups (JSON or "null"), [3] events kept. Returns {seq, created}.
-- Sequence numbers never go back, even after Redis lost its data: a new one is at least the
-- server time in milliseconds, so workers holding an old cursor still see new events.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = string.format('%d', math.max(last + 1, math.floor(now * 1000)))
local created = string.format('%.6f', now)
redis.call('SET', KEYS[2], seq)
redis.call('ZADD', KEYS[1], seq, seq .. '|' .. created .. '|' .. ARGV[1] .. '|' .. ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
return {seq, created}

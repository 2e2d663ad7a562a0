-- worker_register: add (or replace) a worker's registry entry (Backend.register_worker).
-- KEYS[1] the registry (zset: worker id by expiry), KEYS[2] the worker's hash.
-- ARGV[1] id, [2] host, [3] pid, [4] threads as JSON, [5] seconds the entry lives unrenewed.
-- Drops the entries that aged out. Returns the server time.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local after = tonumber(ARGV[5])
local now_s = string.format('%.6f', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'host', ARGV[2], 'pid', ARGV[3], 'threads', ARGV[4],
  'started', now_s, 'heartbeat', now_s, 'held', '0')
redis.call('PEXPIRE', KEYS[2], math.max(1, math.ceil(after * 1000)))
redis.call('ZADD', KEYS[1], string.format('%.6f', now + after), ARGV[1])
return now_s

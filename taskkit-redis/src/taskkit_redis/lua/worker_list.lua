-- worker_list: the live workers (Backend.list_workers); the caller sorts them.
-- KEYS[1] the registry; ARGV[1] the key prefix of the workers' hashes.
-- Drops the entries that aged out. Returns {now, {{id, expiry, HGETALL}, ...}}.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_s = string.format('%.6f', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_s)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local live = {}
for i = 1, #entries, 2 do
  local fields = redis.call('HGETALL', ARGV[1] .. entries[i])
  if #fields > 0 then live[#live + 1] = {entries[i], entries[i + 1], fields} end
end
return {now_s, live}

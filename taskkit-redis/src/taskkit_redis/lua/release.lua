-- release: hand claims back unrun (graceful shutdown): QUEUED, delivery uncounted.
-- ARGV[5..] (id, token) pairs; stale tokens are skipped. Returns how many were released.
local released = 0
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local key = record_key(id)
  local f = redis.call('HMGET', key, 'st', 'tk', 'dl', 'du', 'qm', 'wk')
  if is_current(f, ARGV[i + 1]) then
    drop_lease(key, id, f[6])
    local deliveries = math.max(0, (tonumber(f[3]) or 1) - 1)
    redis.call('HSET', key, 'st', 'queued', 'dl', tostring(deliveries))
    redis.call('ZADD', QUEUE, f[4], f[5])
    released = released + 1
  end
end
if released > 0 then wake() end
return released

-- dead_letters: the group's dead letters, newest first; drops entries whose record expired.
-- ARGV[5] limit. Returns {{id, HGETALL}, ...}.
local limit = tonumber(ARGV[5])
local found = {}
local ids = redis.call('ZREVRANGE', DEAD, 0, -1)
for _, id in ipairs(ids) do
  if #found >= limit then break end
  local fields = redis.call('HGETALL', record_key(id))
  if #fields == 0 then
    redis.call('ZREM', DEAD, id)
  else
    found[#found + 1] = {id, fields}
  end
end
return found

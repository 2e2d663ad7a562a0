-- put: store new QUEUED tasks of one group; idempotent by id.
-- ARGV[5] count, then ten fields per task (see create_record). Returns 1/0 per task.
local count = tonumber(ARGV[5])
local stored, any = {}, false
for n = 0, count - 1 do
  local i = 6 + n * 10
  local id = ARGV[i]
  local ok = id_is_free(id)
  if ok then
    create_record(i)
    any = true
  end
  stored[#stored + 1] = ok and 1 or 0
end
if any then wake() end
return stored

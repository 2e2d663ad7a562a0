-- put: store new QUEUED tasks of one group; idempotent by id.
-- ARGV[5..] (id, header, data) per task (see create_record).
-- Returns a string with one character per task: "1" stored, "0" the id existed.
local stored, any = {}, false
for i = 5, #ARGV, 3 do
  local id = ARGV[i]
  if id_is_free(id) then
    create_record(id, ARGV[i + 1], ARGV[i + 2])
    any = true
    stored[#stored + 1] = '1'
  else
    stored[#stored + 1] = '0'
  end
end
if any then wake() end
return table.concat(stored)

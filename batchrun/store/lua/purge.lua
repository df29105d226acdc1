-- purge.lua: delete up to N dead-lettered jobs and their records, oldest first.
--
-- The caller repeats it until it returns 0, so a long list never blocks the
-- server for long; each call removes ids and their records together.
--
-- KEYS[1]  dead-letter list           batchrun:{ns}:dead
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  most jobs to delete in this call
--
-- Returns the number of jobs deleted.
local ctx = context()
local ids = redis.call('LPOP', KEYS[1], tonumber(ARGV[4]))
if not ids then
    return 0
end
for _, id in ipairs(ids) do
    redis.call('DEL', job_key(ctx, id))
end
return #ids

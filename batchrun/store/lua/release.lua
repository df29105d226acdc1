-- release.lua: give back jobs a worker took but has not started, to the front of their queues.
--
-- A worker that took several short jobs at once and finds them slower than
-- expected returns the rest, so other workers can run them now. Their attempt
-- is not counted, since it never began.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  retention of cancelled jobs' records, milliseconds
-- ARGV[5..] job ids, in the order they were taken
--
-- A concurrency-limited job given back frees its slot (free_slot in lib.lua).
--
-- Returns the number of jobs given back. An id with no usable record stays in
-- the processing list (the worker dead-letters it).
local ctx = context()
local released = 0
for i = #ARGV, 5, -1 do
    local id = ARGV[i]
    local rec = record_of(ctx, id)
    if rec and redis.call('LREM', KEYS[1], 1, id) == 1 then
        local attempts = tonumber(redis.call('HGET', rec.key, 'attempts')) or 1
        redis.call('HSET', rec.key, 'attempts', math.max(attempts - 1, 0))
        if rec.limit then
            free_slot(ctx, id, rec.job)
        end
        put_back(ctx, id, rec, ARGV[4], 'released unstarted')
        released = released + 1
    end
end
return released

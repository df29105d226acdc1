-- enqueue_controlled.lua: create a job whose definition is unique or concurrency-limited.
--
-- Jobs with neither go through enqueue.lua, which stays as lean as it was.
-- A unique job whose job name and params equal those of a job that has not
-- ended (queued, scheduled, retrying or running) is not created: the id of
-- that job is returned instead. The check and the creation are one step, so
-- two clients racing get one job. A limited job carries its limit in its
-- record, where fetch.lua reads it.
--
-- KEYS[1]  job hash            batchrun:{ns}:job:<id>
-- KEYS[2]  unique hash         batchrun:{ns}:unique
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  job id
-- ARGV[5]  job definition name
-- ARGV[6]  params as JSON text
-- ARGV[7]  queue name
-- ARGV[8]  cap on pending wake tokens
-- ARGV[9]  due time, unix seconds; a time not after now queues the job at once
-- ARGV[10] unique key (<job>:<sha256 of the canonical params JSON>), or '' when not unique
-- ARGV[11] concurrency limit, or '' when none
--
-- Returns {id, 1} for a new job, or {id of the existing job, 0}.
local ctx = context()
local id, ukey, limit = ARGV[4], ARGV[10], ARGV[11]
if redis.call('EXISTS', KEYS[1]) == 1 then
    return {id, 0}
end
local extra = {}
if ukey ~= '' then
    local holder = unique_holder(ctx, ukey)
    if holder then
        return {holder, 0}
    end
    redis.call('HSET', KEYS[2], ukey, id)
    extra = {'unique', ukey}
end
if limit ~= '' then
    extra[#extra + 1] = 'limit'
    extra[#extra + 1] = limit
end
new_job(ctx, id, ARGV[5], ARGV[6], ARGV[7], ARGV[9], tonumber(ARGV[8]), extra)
return {id, 1}

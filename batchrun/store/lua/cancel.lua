-- cancel.lua: cancel a job: at once if it waits, by request if it runs.
--
-- A queued or scheduled job is removed from its queue or the scheduled set and
-- marked cancelled in one step, so no worker can take it afterwards. A running
-- job is only marked: the supervisor of its worker sees it in the cancelling
-- set, stops that worker, and reclaim.lua then ends the job as cancelled.
--
-- KEYS[1]  job hash                   batchrun:{ns}:job:<id>
-- KEYS[2]  scheduled set              batchrun:{ns}:scheduled
-- KEYS[3]  cancelling set             batchrun:{ns}:cancelling
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  job id
-- ARGV[5]  retention of the cancelled job's record, milliseconds
--
-- A queued job parked by its concurrency limit is removed from batchrun:{ns}:waiting:<job>.
--
-- Returns 'cancelled', 'cancelling' (it runs; its worker will be stopped),
-- 'missing' (no such job), or 'ended' when it had already ended (nothing changes).
local ctx = context()
local id = ARGV[4]
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
    return 'missing'
end
local fields = redis.call('HMGET', KEYS[1], 'state', 'queue', 'job')
local state, queue, job = fields[1], fields[2], fields[3]
if state == 'queued' and queue then
    if redis.call('LREM', ctx.prefix .. 'queue:' .. queue, 1, id) == 0 and job then
        redis.call('LREM', ctx.prefix .. 'waiting:' .. job, 1, id)
    end
elseif state == 'scheduled' or state == 'retrying' then
    redis.call('ZREM', KEYS[2], id)
    redis.call('SREM', ctx.prefix .. 'retrying', id)
elseif state == 'running' then
    redis.call('HSET', KEYS[1], 'cancel_requested', ctx.now)
    redis.call('SADD', KEYS[3], id)
    return 'cancelling'
else
    return 'ended'
end
cancel(ctx, id, KEYS[1], job, ARGV[5])
return 'cancelled'

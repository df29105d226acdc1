-- fail.lua: end a failed attempt: schedule a retry, or move the job to the dead-letter list.
--
-- Used by a worker when a job's handler failed or the job could not be run,
-- and by a supervisor when it stopped a worker over a job's time or memory
-- limit. A failed attempt counts against the job's retries (its `failures`);
-- a worker dying counts against the crash limit instead (see reclaim.lua).
--
-- KEYS[1]  processing list of the worker    batchrun:{ns}:processing:<wid>
-- KEYS[2]  job hash                         batchrun:{ns}:job:<id>
-- KEYS[3]  heartbeat hash of the worker     batchrun:{ns}:worker:<wid>
-- KEYS[4]  scheduled set                    batchrun:{ns}:scheduled
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  job id
-- ARGV[5]  'retry': a failure that its retries may repeat; 'final': a failure
--          never to retry; 'dead': the job could not be run (unknown job, bad params)
-- ARGV[6]  error message
-- ARGV[7]  traceback (may be empty)
-- ARGV[8]  retries the job allows
-- ARGV[9]  when to retry, unix seconds, if it is retried
-- ARGV[10] retention of a cancelled job's record, milliseconds
--
-- A concurrency-limited job frees its slot whatever the outcome (free_slot in lib.lua).
--
-- A job someone asked to cancel while it ran ends cancelled instead (error
-- kept), so a failure can never bring it back.
--
-- Returns 2 when a retry was scheduled, 1 when the job was dead-lettered or
-- cancelled, or 0 when the job was no longer in the worker's processing list
-- (nothing changes).
local ctx = context()
local id, kind = ARGV[4], ARGV[5]
if not redis.call('LPOS', KEYS[1], id) then
    return 0
end
-- Everything is read and checked before the first write: a script stopped by
-- an error half way is not rolled back, and must not drop a job from its list.
if redis.call('TYPE', KEYS[2]).ok ~= 'hash' then
    redis.call('LREM', KEYS[1], 1, id)
    return 0
end
local fields = redis.call('HMGET', KEYS[2], 'job', 'failures', 'cancel_requested', 'limit')
local job = fields[1] or ''
local failures = math.max(math.floor(tonumber(fields[2]) or 0), 0) + 1
redis.call('LREM', KEYS[1], 1, id)
redis.call('HDEL', KEYS[3], 'job', 'job_started_at')
if fields[4] then
    free_slot(ctx, id, job)
end
if fields[3] then
    redis.call('HSET', KEYS[2], 'error', ARGV[6], 'traceback', ARGV[7])
    cancel(ctx, id, KEYS[2], job, ARGV[10])
    return 1
end
if kind == 'dead' then
    bury_record(ctx, id, KEYS[2], 'dead', job, ARGV[6], ARGV[7])
    return 1
end
redis.call('HSET', KEYS[2], 'failures', failures)
if kind == 'retry' and failures <= tonumber(ARGV[8]) then
    redis.call('HSET', KEYS[2], 'state', 'retrying', 'due_at', ARGV[9], 'error', ARGV[6], 'traceback', ARGV[7])
    redis.call('HDEL', KEYS[2], 'worker')
    redis.call('ZADD', KEYS[4], ARGV[9], id)
    redis.call('SADD', ctx.prefix .. 'retrying', id)
    emit(ctx, id, 'retrying', job, 'retry ' .. failures .. ' of ' .. ARGV[8] .. ': ' .. ARGV[6])
    return 2
end
bury_record(ctx, id, KEYS[2], 'failed', job, ARGV[6], ARGV[7])
return 1

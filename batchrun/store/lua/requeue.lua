-- requeue.lua: put dead-lettered jobs back in their queues with their counters reset.
--
-- A job's checkpoint is kept, so the requeued job resumes where it stopped,
-- unless ARGV[5] asks for a fresh start.
--
-- KEYS[1]  dead-letter list           batchrun:{ns}:dead
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  cap on pending wake tokens
-- ARGV[5]  1 to drop the checkpoint and progress (start afresh), 0 to keep them
-- ARGV[6..] job ids
--
-- A unique job takes its key back, unless an equal job submitted since holds
-- it and has not ended: then it stays dead-lettered (requeueing it would run
-- two equal jobs at once).
--
-- Returns one number per id: 1 requeued, 0 not in the dead-letter list,
-- -1 in it but with no job to run (a malformed entry kept for inspection),
-- -2 a unique job whose twin is live.
local ctx = context()
local results = {}
for i = 6, #ARGV do
    local id = ARGV[i]
    local rec = record_of(ctx, id)
    local ukey = rec and redis.call('HGET', rec.key, 'unique')
    local twin = ukey and unique_holder(ctx, ukey)
    if not rec or rec.job == '' then
        results[#results + 1] = redis.call('LPOS', KEYS[1], id) and -1 or 0
    elseif twin and twin ~= id and redis.call('LPOS', KEYS[1], id) then
        results[#results + 1] = -2
    elseif redis.call('LREM', KEYS[1], 1, id) == 0 then
        results[#results + 1] = 0
    else
        uncount_final(ctx, rec.key, rec.state)
        if ukey then
            redis.call('HSET', ctx.prefix .. 'unique', ukey, id)
        end
        redis.call('HDEL', rec.key, 'attempts', 'failures', 'crashes', 'error', 'traceback', 'last_crash',
            'finished_at', 'started_at', 'worker', 'result', 'due_at', 'cancel_requested')
        if ARGV[5] == '1' then
            redis.call('HDEL', rec.key, 'checkpoint', 'checkpoint_at', 'progress')
        end
        redis.call('HSET', rec.key, 'state', 'queued')
        redis.call('PERSIST', rec.key)
        redis.call('RPUSH', ctx.prefix .. 'queue:' .. rec.queue, id)
        wake_one(ctx, tonumber(ARGV[4]))
        emit(ctx, id, 'queued', rec.job, 'requeued from the dead-letter list')
        results[#results + 1] = 1
    end
end
return results

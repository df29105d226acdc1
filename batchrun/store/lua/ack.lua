-- ack.lua: record the success of one or more jobs and drop them from the worker's processing list.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  result retention, milliseconds
-- ARGV[5..] job id, result JSON, job id, result JSON, ...
--
-- A concurrency-limited job frees its slot (batchrun:{ns}:active:<job>) and lets the
-- oldest waiting one back into its queue (free_slot in lib.lua).
--
-- Returns the number of jobs recorded. An id whose record is gone or is not a
-- hash (tampered with) is dropped, as there is nothing to record it in. A job
-- no longer in this worker's processing list was reclaimed after the worker
-- was presumed dead: its record is left to whoever runs it now. A job of a
-- batch is counted in its batch (see count_final in lib.lua).
local ctx = context()
local stored = 0
for i = 5, #ARGV, 2 do
    local id = ARGV[i]
    local key = job_key(ctx, id)
    if redis.call('TYPE', key).ok ~= 'hash' then
        redis.call('LREM', KEYS[1], 1, id)
    elseif redis.call('LREM', KEYS[1], 1, id) == 1 then
        redis.call('HSET', key, 'state', 'succeeded', 'finished_at', ctx.now, 'result', ARGV[i + 1])
        redis.call('PEXPIRE', key, ARGV[4])
        local fields = redis.call('HMGET', key, 'job', 'limit', 'batch')
        if fields[2] then
            free_slot(ctx, id, fields[1])
        end
        emit(ctx, id, 'succeeded', fields[1], '')
        count_final(ctx, fields[3], 'succeeded')
        stored = stored + 1
    end
end
redis.call('HDEL', KEYS[2], 'job', 'job_started_at')
return stored

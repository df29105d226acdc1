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
-- Returns the number of jobs recorded. An id whose record is gone, is not a
-- hash or has no job name (tampered with) is dropped, as there is nothing to record it in. A job
-- no longer in this worker's processing list was reclaimed after the worker
-- was presumed dead: its record is left to whoever runs it now. A job of a
-- batch is counted in its batch (see count_final in lib.lua), after the
-- successes' events, so a batch's end follows the event of its last job.
--
-- The processing list is read once and written back without the acked ids
-- (a worker acks all it holds, so this is one LRANGE and one DEL instead of
-- an LREM per job).
local ctx = context()
local held = redis.call('LRANGE', KEYS[1], 0, -1)
local holds = {}
for _, id in ipairs(held) do
    holds[id] = (holds[id] or 0) + 1
end

local drop, dropped = {}, 0
local gathered, batches = {}, {}
local stored = 0
for i = 5, #ARGV, 2 do
    local id = ARGV[i]
    if (holds[id] or 0) > 0 then
        holds[id] = holds[id] - 1
        drop[id] = (drop[id] or 0) + 1
        dropped = dropped + 1
        local key = job_key(ctx, id)
        local fields = redis.pcall('HMGET', key, 'job', 'limit', 'batch')
        if not fields.err and fields[1] then
            redis.call('HSET', key, 'state', 'succeeded', 'finished_at', ctx.now, 'result', ARGV[i + 1])
            redis.call('PEXPIRE', key, ARGV[4])
            if fields[2] then
                free_slot(ctx, id, fields[1])
            end
            gather(ctx, gathered, id, 'succeeded', fields[1], '')
            batches[#batches + 1] = fields[3] or false
            stored = stored + 1
        end
    end
end

if dropped > 0 then
    local kept = {}
    for _, id in ipairs(held) do
        if (drop[id] or 0) > 0 then
            drop[id] = drop[id] - 1
        else
            kept[#kept + 1] = id
        end
    end
    redis.call('DEL', KEYS[1])
    for start = 1, #kept, 1000 do
        redis.call('RPUSH', KEYS[1], unpack(kept, start, math.min(start + 999, #kept)))
    end
end
emit_gathered(ctx, gathered)
for _, batch in ipairs(batches) do
    count_final(ctx, batch or nil, 'succeeded')
end
redis.call('HDEL', KEYS[2], 'job', 'job_started_at')
return stored

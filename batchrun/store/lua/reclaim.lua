-- reclaim.lua: put a dead worker's in-flight jobs back, or dead-letter the ones that keep killing workers.
--
-- Called by a supervisor that reaped its own child (at once), or by any
-- supervisor for a worker whose heartbeat expired. Reclaimed jobs go to the
-- front of their queue, so they run again next; a job someone asked to cancel
-- is cancelled instead. Nothing here raises on a malformed record, so a
-- reclaim never stops half way.
--
-- KEYS[1]  processing list of the worker    batchrun:{ns}:processing:<wid>
-- KEYS[2]  heartbeat hash of the worker     batchrun:{ns}:worker:<wid>
-- KEYS[3]  workers set                      batchrun:{ns}:workers
-- KEYS[4]  the highest-priority queue: entries with no usable record go back
--          there, so a worker dead-letters them as malformed, with the reason
-- KEYS[5]  heartbeat expiries               batchrun:{ns}:expiries
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  worker id
-- ARGV[5]  1 to count a crash against each job, 0 when we stopped the worker ourselves
-- ARGV[6]  crash limit: a job reaching it is dead-lettered
-- ARGV[7]  why the worker is gone (kept on the jobs)
-- ARGV[8]  1 to reclaim only if the heartbeat has expired (it is checked here, atomically)
-- ARGV[9]  retention of cancelled jobs' records, milliseconds
--
-- Each concurrency-limited job frees its slot (free_slot in lib.lua) before it is put back.
--
-- Returns {requeued, dead}, or -1 when the heartbeat still exists and ARGV[8] is 1.
local ctx = context()
if ARGV[8] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
    return -1
end
local requeued, dead = 0, 0
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #ids, 1, -1 do
    local id = ids[i]
    local rec = record_of(ctx, id)
    if not rec then
        redis.call('LPUSH', KEYS[4], id)
        redis.call('LPUSH', ctx.prefix .. 'wake', '1')
        requeued = requeued + 1
    else
        if rec.limit then
            free_slot(ctx, id, rec.job)
        end
        local crashes = tonumber(redis.call('HGET', rec.key, 'crashes')) or 0
        if ARGV[5] == '1' then
            crashes = crashes + 1
            redis.call('HSET', rec.key, 'crashes', crashes, 'last_crash', ARGV[7])
            emit(ctx, id, 'crashed', rec.job, ARGV[7])
        end
        if crashes >= tonumber(ARGV[6]) and not rec.cancel then
            bury_record(ctx, id, rec.key, 'dead', rec.job,
                'its worker died ' .. crashes .. ' times while running it; last: ' .. ARGV[7], '')
            dead = dead + 1
        elseif put_back(ctx, id, rec, ARGV[9], ARGV[7]) then
            requeued = requeued + 1
        end
    end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[4])
redis.call('ZREM', KEYS[5], ARGV[4])
return {requeued, dead}

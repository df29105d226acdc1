-- reclaim.lua: put a dead worker's in-flight jobs back, or dead-letter the ones that keep killing workers.
--
-- Called by a supervisor that reaped its own child (at once), or by any
-- supervisor for a worker whose heartbeat expired. Reclaimed jobs go to the
-- front of their queue, so they run again next. Nothing here raises on a
-- malformed record, so a reclaim never stops half way.
--
-- KEYS[1]  processing list of the worker    batchrun:{ns}:processing:<wid>
-- KEYS[2]  heartbeat hash of the worker     batchrun:{ns}:worker:<wid>
-- KEYS[3]  workers set                      batchrun:{ns}:workers
-- KEYS[4]  dead-letter list                 batchrun:{ns}:dead
-- KEYS[5]  wake list                        batchrun:{ns}:wake
-- KEYS[6]  the highest-priority queue: entries with no usable record go back
--          there, so a worker dead-letters them as malformed, with the reason
-- ARGV[1]  worker id
-- ARGV[2]  key prefix of the namespace      batchrun:{ns}:
-- ARGV[3]  1 to count a crash against each job, 0 when we stopped the worker ourselves
-- ARGV[4]  crash limit: a job reaching it is dead-lettered
-- ARGV[5]  why the worker is gone (kept on dead-lettered jobs)
-- ARGV[6]  now, unix seconds
-- ARGV[7]  1 to reclaim only if the heartbeat has expired (it is checked here, atomically)
--
-- Returns {requeued, dead}, or -1 when the heartbeat still exists and ARGV[7] is 1.
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
    return -1
end
local requeued, dead = 0, 0
local function requeue(id, queue_key)
    redis.call('LPUSH', queue_key, id)
    redis.call('LPUSH', KEYS[5], '1')
    requeued = requeued + 1
end

local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for i = #ids, 1, -1 do
    local id = ids[i]
    local job = ARGV[2] .. 'job:' .. id
    local queue = false
    if redis.call('TYPE', job).ok == 'hash' then
        queue = redis.call('HGET', job, 'queue')
    end
    if not queue or queue == '' then
        requeue(id, KEYS[6])
    else
        local crashes = tonumber(redis.call('HGET', job, 'crashes')) or 0
        if ARGV[3] == '1' then
            crashes = crashes + 1
            redis.call('HSET', job, 'crashes', crashes, 'last_crash', ARGV[5])
        end
        if crashes >= tonumber(ARGV[4]) then
            redis.call('HSET', job, 'state', 'dead', 'finished_at', ARGV[6],
                'error', 'its worker died ' .. crashes .. ' times while running it; last: ' .. ARGV[5])
            redis.call('RPUSH', KEYS[4], id)
            dead = dead + 1
        else
            redis.call('HSET', job, 'state', 'queued')
            redis.call('HDEL', job, 'worker')
            requeue(id, ARGV[2] .. 'queue:' .. queue)
        end
    end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return {requeued, dead}

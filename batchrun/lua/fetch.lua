-- fetch.lua: take the highest-priority waiting job into a worker's processing list.
--
-- Priority: queues are swept in the order given, and the first non-empty one
-- wins, so a lower-priority job waits as long as any higher queue has jobs at
-- the moment a worker looks (strict priority; sustained high-priority load can
-- starve lower queues). When every queue is empty, the wake list is cleared:
-- any token left in it was pushed for a job that has already been taken, and
-- the next enqueue pushes a fresh one, so idle workers block on the wake list
-- without missing a job.
--
-- A worker calls this only when it holds no job, so an id already in its
-- processing list was taken by a call whose reply was lost (a dropped
-- connection): that job is handed out again rather than left stranded.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- KEYS[3]  wake list                        batchrun:{ns}:wake
-- KEYS[4..] queue lists, highest priority first
-- ARGV[1]  job key prefix                   batchrun:{ns}:job:
-- ARGV[2]  now, unix seconds
-- ARGV[3]  worker id
--
-- Returns -1 when the worker's heartbeat is gone (it was presumed dead and its
-- jobs reclaimed: it must not take more), an empty array when every queue is
-- empty, or {id, job name, params, attempts, crashes}. A queue entry with no
-- usable job record (missing, not a hash, no job name) comes back as
-- {id, '', '', 0, 0}: the worker dead-letters it as malformed. Nothing here
-- can raise on bad data, so a garbage record never stops a worker.
if redis.call('EXISTS', KEYS[2]) == 0 then
    return -1
end

local function take(id)
    local job = ARGV[1] .. id
    if redis.call('TYPE', job).ok ~= 'hash' then
        return {id, '', '', 0, 0}
    end
    local fields = redis.call('HMGET', job, 'job', 'params', 'crashes', 'attempts')
    if not fields[1] or fields[1] == '' then
        return {id, '', '', 0, 0}
    end
    local attempts = (tonumber(fields[4]) or 0) + 1
    redis.call('HSET', job, 'state', 'running', 'started_at', ARGV[2], 'worker', ARGV[3], 'attempts', attempts)
    redis.call('HSET', KEYS[2], 'job', id, 'job_started_at', ARGV[2])
    return {id, fields[1], fields[2] or '', attempts, tonumber(fields[3]) or 0}
end

local pending = redis.call('LINDEX', KEYS[1], 0)
if pending then
    return take(pending)
end
for i = 4, #KEYS do
    local id = redis.call('LMOVE', KEYS[i], KEYS[1], 'LEFT', 'RIGHT')
    if id then
        return take(id)
    end
end
redis.call('DEL', KEYS[3])
return {}

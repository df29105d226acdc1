-- fetch.lua: take up to N of the highest-priority waiting jobs into a worker's processing list.
--
-- Priority: queues are swept in the order given, and the first non-empty one
-- wins, so a lower-priority job waits as long as any higher queue has jobs at
-- the moment a worker looks (strict priority; sustained high-priority load can
-- starve lower queues). When every queue is empty, the wake list is cleared:
-- any token left in it was pushed for a job that has already been taken, and
-- the next enqueue pushes a fresh one, so idle workers block on the wake list
-- without missing a job.
--
-- A worker calls this only when it holds no job, so ids already in its
-- processing list were taken by a call whose reply was lost (a dropped
-- connection): those jobs are handed out again rather than left stranded.
--
-- Taking several jobs per call is what makes short jobs cheap; the worker
-- asks for more than one only when its recent jobs were short (see pacing.py).
--
-- Paused queues (the set batchrun:{ns}:paused, derived from the prefix) are
-- skipped. A job whose record carries a concurrency limit takes a slot in
-- batchrun:{ns}:active:<job>; when its slots are full it is parked at the
-- back of batchrun:{ns}:waiting:<job> instead (the front, if it had waited
-- before), where it costs nothing until a slot is freed (lib.lua, free_slot).
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  heartbeat hash of this worker    batchrun:{ns}:worker:<wid>
-- KEYS[3]  wake list                        batchrun:{ns}:wake
-- KEYS[4..] queue lists, highest priority first
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  worker id
-- ARGV[5]  most jobs to take
--
-- Returns -1 when the worker's heartbeat is gone (it was presumed dead and its
-- jobs reclaimed: it must not take more), an empty array when every queue is
-- empty, or {id, job name, params, attempts, crashes, failures, id, ...} in
-- the order the jobs were taken. A queue entry with no usable job record
-- (missing, not a hash, no job name) comes back as {id, '', '', 0, 0, 0}: the
-- worker dead-letters it as malformed. Nothing here raises on bad data, so a
-- garbage record never stops a worker.
local ctx = context()
if redis.call('EXISTS', KEYS[2]) == 0 then
    return -1
end

local paused = {}
for _, name in ipairs(redis.call('SMEMBERS', ctx.prefix .. 'paused')) do
    paused[ctx.prefix .. 'queue:' .. name] = true
end

-- Park a limited job whose slots are full (it has left its queue, and does not enter the
-- processing list); true if it was parked.
local function parked(id, job, limit, fresh)
    local active = ctx.prefix .. 'active:' .. job
    if redis.call('SISMEMBER', active, id) == 1 then
        return false
    end
    if fresh and redis.call('SCARD', active) >= limit then
        local waited = redis.call('HSETNX', job_key(ctx, id), 'waited', '1') == 0
        redis.call(waited and 'LPUSH' or 'RPUSH', ctx.prefix .. 'waiting:' .. job, id)
        return true
    end
    redis.call('SADD', active, id)
    return false
end

-- The fields a worker needs of job `id`, with the job marked running; false when it was parked.
-- HMGET through pcall stands in for a TYPE check: a key of another type is an error reply.
local function take(id, fresh, gathered)
    local job = job_key(ctx, id)
    local fields = redis.pcall('HMGET', job, 'job', 'params', 'crashes', 'attempts', 'failures', 'limit')
    if fields.err or not fields[1] or fields[1] == '' then
        return {id, '', '', 0, 0, 0}
    end
    local limit = tonumber(fields[6])
    if limit and parked(id, fields[1], limit, fresh) then
        return false
    end
    local attempts = (tonumber(fields[4]) or 0) + 1
    redis.call('HSET', job, 'state', 'running', 'started_at', ctx.now, 'worker', ARGV[4], 'attempts', attempts)
    gather(ctx, gathered, id, 'started', fields[1], 'attempt ' .. attempts)
    return {id, fields[1], fields[2] or '', attempts, tonumber(fields[3]) or 0, tonumber(fields[5]) or 0}
end

local limit = tonumber(ARGV[5])
local taken, gathered = {}, {}
local function add(job)
    for _, field in ipairs(job) do
        taken[#taken + 1] = field
    end
end

-- The worker's hash names its first job while it runs (ack, fail and bury clear it).
local function finish()
    emit_gathered(ctx, gathered)
    if #taken > 0 then
        redis.call('HSET', KEYS[2], 'job', taken[1], 'job_started_at', ctx.now)
    end
    return taken
end

local pending = redis.call('LRANGE', KEYS[1], 0, limit - 1)
if #pending > 0 then
    for _, id in ipairs(pending) do
        add(take(id, false, gathered))
    end
    return finish()
end

-- Move up to `want` ids from the front of `queue` to the back of the processing list: the same as
-- that many LMOVEs, as the script is atomic, in three calls. Parked and taken ids alike leave the
-- queue; only the ids that are not parked enter the processing list.
local function move(queue, want)
    local ids = redis.call('LRANGE', queue, 0, want - 1)
    if #ids == 0 then
        return 0, true
    end
    redis.call('LTRIM', queue, #ids, -1)
    local moved = {}
    for _, id in ipairs(ids) do
        local job = take(id, true, gathered)
        if job then
            add(job)
            moved[#moved + 1] = id
        end
    end
    if #moved > 0 then
        redis.call('RPUSH', KEYS[1], unpack(moved))
    end
    return #moved, #ids < want
end

local count = 0
for i = 4, #KEYS do
    local drained = paused[KEYS[i]]
    while count < limit and not drained do
        local got
        got, drained = move(KEYS[i], limit - count)
        count = count + got
    end
end
if count == 0 then
    redis.call('DEL', KEYS[3])
end
return finish()

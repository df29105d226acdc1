-- lib.lua: helpers shared by the job-state scripts; scripts.py puts in front of each script the
-- definitions it uses, found by name (so each top-level definition starts a line with `local`).
--
-- Redis runs every script on its own, so shared code is prepended rather than
-- imported. Every script that uses these helpers takes the same first three
-- arguments, read by context():
--
-- ARGV[1]  key prefix of the namespace      batchrun:{ns}:
-- ARGV[2]  now, unix seconds
-- ARGV[3]  events to keep in the events stream; 0 publishes no events
--
-- Keys derived here (job hashes, queues, the events stream, the cancelling
-- set) all start with that prefix, so they share the namespace's hash tag
-- and every script stays within one Redis Cluster slot.

local function context()
    return {prefix = ARGV[1], now = ARGV[2], cap = tonumber(ARGV[3]) or 0}
end

local function job_key(ctx, id)
    return ctx.prefix .. 'job:' .. id
end

-- Publish an event on the channel of the events stream if anyone listens
-- (asked once per script call: encoding events nobody reads is most of their cost).
local function publish(ctx, key, id, event, job, detail)
    if ctx.listeners == nil then
        ctx.listeners = redis.call('PUBSUB', 'NUMSUB', key)[2] > 0
    end
    if ctx.listeners then
        redis.call('PUBLISH', key, cjson.encode({id = id, event = event, job = job or '',
            ts = tonumber(ctx.now), detail = detail or ''}))
    end
end

-- Append the same event of one or more jobs to the capped stream as one entry (`id` holds their
-- ids, space-separated: store/events.py reads it back as one event per job), and publish one
-- message per job to live listeners.
local function emit_all(ctx, ids, event, job, detail)
    if ctx.cap <= 0 or #ids == 0 then
        return
    end
    local key = ctx.prefix .. 'events'
    redis.call('XADD', key, 'MAXLEN', '~', ctx.cap, '*',
        'id', table.concat(ids, ' '), 'event', event, 'job', job or '', 'ts', ctx.now, 'detail', detail or '')
    for _, id in ipairs(ids) do
        publish(ctx, key, id, event, job, detail)
    end
end

-- emit_all for one job, without the table of ids: most scripts emit for a single job.
local function emit(ctx, id, event, job, detail)
    if ctx.cap <= 0 then
        return
    end
    local key = ctx.prefix .. 'events'
    redis.call('XADD', key, 'MAXLEN', '~', ctx.cap, '*',
        'id', id, 'event', event, 'job', job or '', 'ts', ctx.now, 'detail', detail or '')
    publish(ctx, key, id, event, job, detail)
end

-- Events of a loop over many jobs, gathered by (event, job name, detail) so that one stream entry
-- carries the same event of up to EVENT_GROUP jobs: a stream entry costs the server about as much
-- as the rest of a job's transition. Call emit_gathered(ctx, gathered) before the script returns.
local EVENT_GROUP = 100
local function gather(ctx, gathered, id, event, job, detail)
    job, detail = job or '', detail or ''
    local by_job = gathered[event] or {}
    gathered[event] = by_job
    local by_detail = by_job[job] or {}
    by_job[job] = by_detail
    local group = by_detail[detail]
    if not group then
        group = {event = event, job = job, detail = detail, ids = {}}
        by_detail[detail] = group
        gathered[#gathered + 1] = group
    end
    group.ids[#group.ids + 1] = id
    if #group.ids == EVENT_GROUP then
        emit_all(ctx, group.ids, event, job, detail)
        group.ids = {}
    end
end

local function emit_gathered(ctx, gathered)
    for _, group in ipairs(gathered) do
        emit_all(ctx, group.ids, group.event, group.job, group.detail)
    end
end

-- The queue, definition name, state and cancel request of a job record,
-- or false when there is no usable record.
local function record_of(ctx, id)
    local key = job_key(ctx, id)
    if redis.call('TYPE', key).ok ~= 'hash' then
        return false
    end
    local fields = redis.call('HMGET', key, 'queue', 'job', 'cancel_requested', 'state', 'limit')
    if not fields[1] or fields[1] == '' then
        return false
    end
    return {key = key, queue = fields[1], job = fields[2] or '', cancel = fields[3], state = fields[4],
        limit = fields[5]}
end

local function wake_one(ctx, cap)
    local wake = ctx.prefix .. 'wake'
    if redis.call('LLEN', wake) < cap then
        redis.call('LPUSH', wake, '1')
    end
end

-- A batch's last job reached a final state: stamp the end, let the record
-- expire after the result retention, and queue the batch's on_complete job.
-- The callback's id was made at map time, and a batch ends here only on the
-- transition of its `pending` counter to 0, so it is queued exactly once
-- (a batch reopened by a requeue does not queue it again).
local function end_batch(ctx, bkey)
    local f = redis.call('HMGET', bkey, 'id', 'job', 'ttl_ms', 'on_complete', 'on_complete_id',
        'on_complete_queue', 'on_complete_params', 'total', 'failed', 'dead', 'cancelled', 'on_complete_limit')
    redis.call('HSET', bkey, 'ended_at', ctx.now)
    redis.call('PEXPIRE', bkey, tonumber(f[3]) or 604800000)
    local failed, dead, cancelled = tonumber(f[9]) or 0, tonumber(f[10]) or 0, tonumber(f[11]) or 0
    emit(ctx, f[1], 'batch_ended', f[2], 'succeeded ' .. ((tonumber(f[8]) or 0) - failed - dead - cancelled) ..
        ', failed ' .. failed .. ', dead ' .. dead .. ', cancelled ' .. cancelled)
    if not f[4] or f[4] == '' or redis.call('HSETNX', bkey, 'on_complete_queued', ctx.now) == 0 then
        return
    end
    local ckey = job_key(ctx, f[5])
    if redis.call('EXISTS', ckey) == 0 then
        redis.call('HSET', ckey, 'job', f[4], 'params', f[7], 'queue', f[6], 'state', 'queued', 'enqueued_at', ctx.now)
        if f[12] then
            redis.call('HSET', ckey, 'limit', f[12])
        end
        redis.call('RPUSH', ctx.prefix .. 'queue:' .. f[6], f[5])
        redis.call('LPUSH', ctx.prefix .. 'wake', '1')
        emit(ctx, f[5], 'queued', f[4], 'batch ' .. f[1] .. ' ended')
    end
end

-- A job of a batch (`batch`, from its record; nil for a job of no batch)
-- reached a final state. Callers call this only on the transition into a
-- final state, so a job re-run after a crash is never counted twice. A
-- success costs one call: the batch's `pending` counter (its total at the
-- start) goes down; successes are what is left of the total when pending,
-- failed, dead and cancelled are taken away (store/batches.py).
local function count_final(ctx, batch, state)
    if not batch then
        return
    end
    local bkey = ctx.prefix .. 'batch:' .. batch
    local left = redis.call('HINCRBY', bkey, 'pending', -1)
    if left < 0 then
        -- no such batch (its record was deleted): take back the write, leave no stray key
        if redis.call('HLEN', bkey) == 1 then
            redis.call('DEL', bkey)
        else
            redis.call('HINCRBY', bkey, 'pending', 1)
        end
        return
    end
    if state ~= 'succeeded' then
        redis.call('HINCRBY', bkey, state, 1)
    end
    if left == 0 then
        end_batch(ctx, bkey)
    end
end

-- A job of a batch left a final state (requeued from the dead-letter list):
-- uncount it, and keep the batch's record until it ends again.
local function uncount_final(ctx, key, state)
    local batch = redis.call('HGET', key, 'batch')
    local bkey = batch and ctx.prefix .. 'batch:' .. batch
    if not bkey or redis.call('TYPE', bkey).ok ~= 'hash' then
        return
    end
    if state ~= 'succeeded' then
        redis.call('HINCRBY', bkey, state, -1)
    end
    redis.call('HINCRBY', bkey, 'pending', 1)
    redis.call('HDEL', bkey, 'ended_at')
    redis.call('PERSIST', bkey)
end

-- End a job as cancelled; its record stays readable for the result retention.
local function cancel(ctx, id, key, job, ttl_ms)
    count_final(ctx, redis.call('HGET', key, 'batch'), 'cancelled')
    redis.call('HSET', key, 'state', 'cancelled', 'finished_at', ctx.now)
    redis.call('HDEL', key, 'due_at', 'cancel_requested')
    redis.call('PEXPIRE', key, ttl_ms)
    redis.call('SREM', ctx.prefix .. 'cancelling', id)
    emit(ctx, id, 'cancelled', job, '')
end

-- Put a job taken from a processing list back at the front of its queue,
-- unless someone asked to cancel it meanwhile.
local function put_back(ctx, id, rec, ttl_ms, detail)
    if rec.cancel then
        cancel(ctx, id, rec.key, rec.job, ttl_ms)
        return false
    end
    redis.call('HSET', rec.key, 'state', 'queued')
    redis.call('HDEL', rec.key, 'worker', 'started_at')
    redis.call('LPUSH', ctx.prefix .. 'queue:' .. rec.queue, id)
    redis.call('LPUSH', ctx.prefix .. 'wake', '1')
    emit(ctx, id, 'queued', rec.job, detail)
    return true
end

-- Move a job to the dead-letter list for good ('failed' or 'dead').
local function bury_record(ctx, id, key, state, job, err, tb)
    count_final(ctx, redis.call('HGET', key, 'batch'), state)
    redis.call('HSET', key, 'state', state, 'finished_at', ctx.now, 'error', err, 'traceback', tb or '')
    redis.call('RPUSH', ctx.prefix .. 'dead', id)
    emit(ctx, id, state, job, err)
end


-- Create a job record and queue it, or schedule it when it is due later than now.
-- extra: more field/value pairs for the record (a unique key, a concurrency limit).
local function new_job(ctx, id, job, params, queue, due, wake_cap, extra)
    local key = job_key(ctx, id)
    local later = tonumber(due) > tonumber(ctx.now)
    redis.call('HSET', key, 'job', job, 'params', params, 'queue', queue,
        'state', later and 'scheduled' or 'queued', 'enqueued_at', ctx.now, unpack(extra))
    if later then
        redis.call('HSET', key, 'due_at', due)
        redis.call('ZADD', ctx.prefix .. 'scheduled', due, id)
        emit(ctx, id, 'scheduled', job, due)
    else
        redis.call('RPUSH', ctx.prefix .. 'queue:' .. queue, id)
        wake_one(ctx, wake_cap)
        emit(ctx, id, 'queued', job, '')
    end
end

-- The id of the job holding a unique key while it has not ended, or false. The key of a job that
-- ended (or whose record expired) is free: no script has to release it, so jobs that are not
-- unique pay nothing for the feature.
local LIVE_STATES = {queued = true, scheduled = true, retrying = true, running = true}
local function unique_holder(ctx, ukey)
    local holder = redis.call('HGET', ctx.prefix .. 'unique', ukey)
    if not holder then
        return false
    end
    local state = redis.pcall('HGET', job_key(ctx, holder), 'state')
    if type(state) == 'string' and LIVE_STATES[state] then
        return holder
    end
    return false
end

-- A concurrency-limited job that ends, or goes back to wait, gives up its slot; the oldest job of
-- its kind parked while the slots were full (see fetch.lua) goes to the front of its queue.
local function free_slot(ctx, id, job)
    if redis.call('SREM', ctx.prefix .. 'active:' .. job, id) == 0 then
        return
    end
    local waiting = ctx.prefix .. 'waiting:' .. job
    for _ = 1, 100 do
        local next_id = redis.call('LPOP', waiting)
        if not next_id then
            return
        end
        local rec = record_of(ctx, next_id)
        if rec and rec.state == 'queued' then
            redis.call('LPUSH', ctx.prefix .. 'queue:' .. rec.queue, next_id)
            redis.call('LPUSH', ctx.prefix .. 'wake', '1')
            return
        end
    end
end

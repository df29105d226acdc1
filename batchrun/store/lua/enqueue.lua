-- enqueue.lua: create a job record and append its id to its queue, or schedule it for later.
--
-- KEYS[1]  job hash            batchrun:{ns}:job:<id>
-- KEYS[2]  queue list          batchrun:{ns}:queue:<queue>
-- KEYS[3]  scheduled set       batchrun:{ns}:scheduled (sorted by due time)
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  job id
-- ARGV[5]  job definition name
-- ARGV[6]  params as JSON text
-- ARGV[7]  queue name
-- ARGV[8]  cap on pending wake tokens (so tokens cannot pile up while every worker is busy)
-- ARGV[9]  due time, unix seconds; a time not after now queues the job at once
--
-- attempts, failures and crashes start absent (read as 0), to keep a waiting job small.
--
-- Returns 1, or 0 when a job with that id already exists (nothing is written).
local ctx = context()
local id = ARGV[4]
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
if tonumber(ARGV[9]) > tonumber(ctx.now) then
    redis.call('HSET', KEYS[1], 'job', ARGV[5], 'params', ARGV[6], 'queue', ARGV[7],
        'state', 'scheduled', 'enqueued_at', ctx.now, 'due_at', ARGV[9])
    redis.call('ZADD', KEYS[3], ARGV[9], id)
    emit(ctx, id, 'scheduled', ARGV[5], ARGV[9])
    return 1
end
redis.call('HSET', KEYS[1], 'job', ARGV[5], 'params', ARGV[6], 'queue', ARGV[7],
    'state', 'queued', 'enqueued_at', ctx.now)
redis.call('RPUSH', KEYS[2], id)
wake_one(ctx, tonumber(ARGV[8]))
emit(ctx, id, 'queued', ARGV[5], '')
return 1

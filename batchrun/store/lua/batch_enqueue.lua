-- batch_enqueue.lua: create and queue one chunk of a batch's jobs, in input order.
--
-- A job of a batch is named by the batch id and its index (8 hex digits), so
-- no list of ids is kept; its record carries `batch` and `index`, which is how
-- the scripts that end a job find the batch to count it in (lib.lua).
-- Chunks are sent in order, and a chunk is applied only if the batch's
-- `queued` counter is at its first index: a chunk sent again after a lost
-- reply changes nothing. A chunk emits one `batch_queued` event (id: the
-- batch), not one per job: per-job events would halve the rate of a large map
-- and push every other event out of the capped stream.
--
-- A concurrency-limited job's limit (`limit` in the batch hash) is written on
-- each record, as enqueue_controlled.lua does, so fetch.lua enforces it.
--
-- KEYS[1]  batch hash                 batchrun:{ns}:batch:<bid>
-- KEYS[2]  queue list                 batchrun:{ns}:queue:<queue>
-- KEYS[3]  wake list                  batchrun:{ns}:wake
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  batch id
-- ARGV[5]  job definition name
-- ARGV[6]  queue name
-- ARGV[7]  cap on pending wake tokens
-- ARGV[8]  index of this chunk's first job
-- ARGV[9..] params JSON of each job of the chunk, in order
--
-- Returns the number of jobs queued, 0 for a chunk already applied, -1
-- when the batch's record is gone, or -2 when the batch was closed
-- (cancelled, batch_close.lua) meanwhile.
local ctx = context()
local batch, job, queue, first = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[8])
local queued, limit, closed = unpack(redis.call('HMGET', KEYS[1], 'queued', 'limit', 'closed'))
if not queued then
    return -1
end
if closed then
    return -2
end
if tonumber(queued) ~= first then
    return 0
end
local ids = {}
for i = 9, #ARGV do
    local index = first + i - 9
    local id = batch .. string.format('%08x', index)
    redis.call('HSET', job_key(ctx, id), 'job', job, 'params', ARGV[i], 'queue', queue, 'state', 'queued',
        'enqueued_at', ctx.now, 'batch', batch, 'index', index)
    if limit then
        redis.call('HSET', job_key(ctx, id), 'limit', limit)
    end
    ids[#ids + 1] = id
    if #ids == 1000 then
        redis.call('RPUSH', KEYS[2], unpack(ids))
        ids = {}
    end
end
if #ids > 0 then
    redis.call('RPUSH', KEYS[2], unpack(ids))
end
local count = #ARGV - 8
redis.call('HINCRBY', KEYS[1], 'queued', count)
emit(ctx, batch, 'batch_queued', job, 'jobs ' .. first .. '-' .. (first + count - 1))
local tokens = math.min(count, tonumber(ARGV[7]) - redis.call('LLEN', KEYS[3]))
for _ = 1, tokens do
    redis.call('LPUSH', KEYS[3], '1')
end
return count

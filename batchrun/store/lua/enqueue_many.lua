-- enqueue_many.lua: create many job records of one job definition and queue (or schedule) them.
--
-- The bulk form of enqueue.lua: one round trip for a chunk of jobs. Job hashes
-- are derived from the prefix, inside the namespace's hash tag.
--
-- KEYS[1]  queue list          batchrun:{ns}:queue:<queue>
-- KEYS[2]  wake list           batchrun:{ns}:wake
-- KEYS[3]  scheduled set       batchrun:{ns}:scheduled
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  job definition name
-- ARGV[5]  queue name
-- ARGV[6]  cap on pending wake tokens
-- ARGV[7]  due time, unix seconds; a time not after now queues the jobs at once
-- ARGV[8..] job id, params JSON, job id, params JSON, ...
--
-- Returns the number of jobs created; ids that already exist are skipped.
local ctx = context()
local job, queue, due = ARGV[4], ARGV[5], ARGV[7]
local later = tonumber(due) > tonumber(ctx.now)
local state = later and 'scheduled' or 'queued'
local created = 0
local ids = {}
local function flush()
    if #ids > 0 and not later then
        redis.call('RPUSH', KEYS[1], unpack(ids))
    end
    ids = {}
end
for i = 8, #ARGV, 2 do
    local id = ARGV[i]
    local key = job_key(ctx, id)
    if redis.call('EXISTS', key) == 0 then
        redis.call('HSET', key, 'job', job, 'params', ARGV[i + 1], 'queue', queue,
            'state', state, 'enqueued_at', ctx.now)
        if later then
            redis.call('HSET', key, 'due_at', due)
            redis.call('ZADD', KEYS[3], due, id)
        end
        emit(ctx, id, state, job, later and due or '')
        created = created + 1
        ids[#ids + 1] = id
        if #ids == 1000 then
            flush()
        end
    end
end
flush()
if not later then
    local tokens = math.min(created, tonumber(ARGV[6]) - redis.call('LLEN', KEYS[2]))
    for _ = 1, tokens do
        redis.call('LPUSH', KEYS[2], '1')
    end
end
return created

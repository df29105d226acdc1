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
-- Fresh ids are random, so one EXISTS over a whole slice of keys usually
-- shows none exists, and only a slice sent again (a lost reply) is checked
-- key by key.
local ctx = context()
local job, queue, due = ARGV[4], ARGV[5], ARGV[7]
local later = tonumber(due) > tonumber(ctx.now)
local state = later and 'scheduled' or 'queued'
local SLICE = 1000

local created = {}
local job_prefix = ctx.prefix .. 'job:'
for first = 8, #ARGV, 2 * SLICE do
    local last = math.min(#ARGV - 1, first + 2 * SLICE - 2)
    local keys = {}
    for i = first, last, 2 do
        keys[#keys + 1] = job_prefix .. ARGV[i]
    end
    local any = redis.call('EXISTS', unpack(keys)) > 0
    local n = 0
    for i = first, last, 2 do
        n = n + 1
        if not any or redis.call('EXISTS', keys[n]) == 0 then
            redis.call('HSET', keys[n], 'job', job, 'params', ARGV[i + 1], 'queue', queue,
                'state', state, 'enqueued_at', ctx.now)
            if later then
                redis.call('HSET', keys[n], 'due_at', due)
                redis.call('ZADD', KEYS[3], due, ARGV[i])
            end
            created[#created + 1] = ARGV[i]
        end
    end
end

for first = 1, #created, SLICE do
    local last = math.min(#created, first + SLICE - 1)
    if not later then
        redis.call('RPUSH', KEYS[1], unpack(created, first, last))
    end
    for group = first, last, EVENT_GROUP do
        emit_all(ctx, {unpack(created, group, math.min(last, group + EVENT_GROUP - 1))}, state, job,
            later and due or '')
    end
end
if not later then
    local tokens = math.min(#created, tonumber(ARGV[6]) - redis.call('LLEN', KEYS[2]))
    if tokens > 0 then
        local ones = {}
        for n = 1, tokens do
            ones[n] = '1'
        end
        redis.call('LPUSH', KEYS[2], unpack(ones))
    end
end
return #created

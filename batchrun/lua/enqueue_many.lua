-- enqueue_many.lua: create many job records of one job definition and append them to its queue.
--
-- The bulk form of enqueue.lua: one round trip for a chunk of jobs. Job hashes
-- are derived from the prefix, inside the namespace's hash tag.
--
-- KEYS[1]  queue list          batchrun:{ns}:queue:<queue>
-- KEYS[2]  wake list           batchrun:{ns}:wake
-- ARGV[1]  job key prefix      batchrun:{ns}:job:
-- ARGV[2]  job definition name
-- ARGV[3]  queue name
-- ARGV[4]  now, unix seconds
-- ARGV[5]  cap on pending wake tokens
-- ARGV[6..] job id, params JSON, job id, params JSON, ...
--
-- Returns the number of jobs created; ids that already exist are skipped.
local created = 0
local ids = {}
for i = 6, #ARGV, 2 do
    local key = ARGV[1] .. ARGV[i]
    if redis.call('EXISTS', key) == 0 then
        redis.call('HSET', key, 'job', ARGV[2], 'params', ARGV[i + 1], 'queue', ARGV[3],
            'state', 'queued', 'enqueued_at', ARGV[4])
        created = created + 1
        ids[#ids + 1] = ARGV[i]
        if #ids == 1000 then
            redis.call('RPUSH', KEYS[1], unpack(ids))
            ids = {}
        end
    end
end
if #ids > 0 then
    redis.call('RPUSH', KEYS[1], unpack(ids))
end
local tokens = math.min(created, tonumber(ARGV[5]) - redis.call('LLEN', KEYS[2]))
for _ = 1, tokens do
    redis.call('LPUSH', KEYS[2], '1')
end
return created

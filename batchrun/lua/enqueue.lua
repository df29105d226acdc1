-- enqueue.lua: create a job record and append its id to its queue, waking one idle worker.
--
-- KEYS[1]  job hash            batchrun:{ns}:job:<id>
-- KEYS[2]  queue list          batchrun:{ns}:queue:<queue>
-- KEYS[3]  wake list           batchrun:{ns}:wake
-- ARGV[1]  job id
-- ARGV[2]  job definition name
-- ARGV[3]  params as JSON text
-- ARGV[4]  queue name
-- ARGV[5]  now, unix seconds
-- ARGV[6]  cap on pending wake tokens (so tokens cannot pile up while every worker is busy)
--
-- attempts and crashes start absent (read as 0), to keep a waiting job small.
--
-- Returns 1, or 0 when a job with that id already exists (nothing is written).
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
redis.call('HSET', KEYS[1],
    'job', ARGV[2], 'params', ARGV[3], 'queue', ARGV[4],
    'state', 'queued', 'enqueued_at', ARGV[5])
redis.call('RPUSH', KEYS[2], ARGV[1])
if redis.call('LLEN', KEYS[3]) < tonumber(ARGV[6]) then
    redis.call('LPUSH', KEYS[3], '1')
end
return 1

-- release.lua: give back jobs a worker took but has not started, to the front of their queues.
--
-- A worker that took several short jobs at once and finds them slower than
-- expected returns the rest, so other workers can run them now.
--
-- KEYS[1]  processing list of this worker   batchrun:{ns}:processing:<wid>
-- KEYS[2]  wake list                        batchrun:{ns}:wake
-- ARGV[1]  key prefix of the namespace      batchrun:{ns}:
-- ARGV[2..] job ids, in the order they were taken
--
-- Returns the number of jobs given back. An id with no usable record stays in
-- the processing list (the worker dead-letters it).
local released = 0
for i = #ARGV, 2, -1 do
    local id = ARGV[i]
    local job = ARGV[1] .. 'job:' .. id
    local queue = false
    if redis.call('TYPE', job).ok == 'hash' then
        queue = redis.call('HGET', job, 'queue')
    end
    if queue and redis.call('LREM', KEYS[1], 1, id) == 1 then
        local attempts = tonumber(redis.call('HGET', job, 'attempts')) or 1
        redis.call('HSET', job, 'state', 'queued', 'attempts', math.max(attempts - 1, 0))
        redis.call('HDEL', job, 'worker', 'started_at')
        redis.call('LPUSH', ARGV[1] .. 'queue:' .. queue, id)
        redis.call('LPUSH', KEYS[2], '1')
        released = released + 1
    end
end
return released

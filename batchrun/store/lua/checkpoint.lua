-- checkpoint.lua: save a running job's resumable state in its record, fenced by the attempt.
--
-- The next attempt of the same job (after a crash, a timeout or a retried
-- failure) reads it back to resume. A write is refused unless the job is in
-- this worker's processing list and its record still counts this attempt, so
-- a worker that was presumed dead can never overwrite the checkpoint of a
-- later attempt.
--
-- KEYS[1]  processing list of the worker    batchrun:{ns}:processing:<wid>
-- KEYS[2]  job hash                         batchrun:{ns}:job:<id>
-- ARGV[1]  job id
-- ARGV[2]  the attempt number writing
-- ARGV[3]  the state, as JSON
-- ARGV[4]  now, unix seconds
--
-- Returns 1, or 0 when the write was refused (a stale attempt).
if not redis.call('LPOS', KEYS[1], ARGV[1]) or redis.call('TYPE', KEYS[2]).ok ~= 'hash' then
    return 0
end
if redis.call('HGET', KEYS[2], 'attempts') ~= ARGV[2] then
    return 0
end
redis.call('HSET', KEYS[2], 'checkpoint', ARGV[3], 'checkpoint_at', ARGV[4])
return 1

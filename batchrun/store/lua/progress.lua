-- progress.lua: record how far a running job has got, and publish a `progress` event.
--
-- Fenced like ack: only the worker that holds the job in its processing list
-- may write, so a worker presumed dead cannot overwrite a later attempt's view.
--
-- KEYS[1]  processing list of the worker    batchrun:{ns}:processing:<wid>
-- KEYS[2]  job hash                         batchrun:{ns}:job:<id>
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
-- ARGV[4]  job id
-- ARGV[5]  progress as JSON: {"done", "total", "message", "at"}
--
-- Returns 1, or 0 when the job is no longer this worker's.
local ctx = context()
if not redis.call('LPOS', KEYS[1], ARGV[4]) or redis.call('TYPE', KEYS[2]).ok ~= 'hash' then
    return 0
end
redis.call('HSET', KEYS[2], 'progress', ARGV[5])
emit(ctx, ARGV[4], 'progress', redis.call('HGET', KEYS[2], 'job'), ARGV[5])
return 1

-- batch_close.lua: close a batch to further chunks; inputs never queued stop counting.
--
-- Called when a batch is cancelled. A map killed while it queued leaves its
-- batch with a total that counts inputs never queued, so the batch could
-- never end; closing it lowers the total to what was queued (and `pending`
-- with it), and ends the batch at once if nothing is left to run. A chunk
-- sent after the close is refused by batch_enqueue.lua.
--
-- KEYS[1]  batch hash                 batchrun:{ns}:batch:<bid>
-- ARGV[1..3] prefix, now, events cap (see lib.lua)
--
-- Returns how many inputs were dropped, or -1 when the batch's record is gone.
local ctx = context()
local f = redis.call('HMGET', KEYS[1], 'total', 'queued', 'closed', 'ended_at')
if not f[1] then
    return -1
end
if f[3] or f[4] then
    return 0
end
redis.call('HSET', KEYS[1], 'closed', ctx.now)
local dropped = (tonumber(f[1]) or 0) - (tonumber(f[2]) or 0)
if dropped <= 0 then
    return 0
end
redis.call('HSET', KEYS[1], 'total', tonumber(f[2]) or 0)
if redis.call('HINCRBY', KEYS[1], 'pending', -dropped) <= 0 then
    end_batch(ctx, KEYS[1])
end
return dropped

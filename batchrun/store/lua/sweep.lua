-- sweep.lua: find workers whose heartbeat has expired, and when the next one will.
--
-- The expiries index holds every registered worker scored by when its
-- heartbeat expires (server milliseconds), so a sweep reads only the expired
-- entries and the earliest live one: its cost does not grow with the number of
-- hosts. Supervisors time their next sweep to the reply's "next expiry", so a
-- dead host's jobs come back right after its heartbeats expire.
--
-- Each expired worker is handed to one sweeper: its score is moved a lease
-- ahead, so the other supervisors sweeping at the same moment skip it. The
-- reclaim script removes it from the index; if the sweeper dies first, the
-- lease runs out and another supervisor picks the worker up.
--
-- KEYS[1]  heartbeat expiries               batchrun:{ns}:expiries
-- ARGV[1]  most workers to hand out
-- ARGV[2]  lease, milliseconds
--
-- Returns {milliseconds until the next expiry (-1: none registered), worker id...}.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
-- A key expires once the server's clock is past its expiry: 2 ms of margin keep the
-- index from naming a worker whose key still exists.
local expired = redis.call('ZRANGE', KEYS[1], '-inf', now - 2, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
for _, wid in ipairs(expired) do
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), wid)
end
local next_due = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
    next_due = math.max(0, tonumber(first[2]) + 2 - now)
end
local reply = {next_due}
for _, wid in ipairs(expired) do
    reply[#reply + 1] = wid
end
return reply

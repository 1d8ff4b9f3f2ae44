"""Server-side Lua scripts: what must happen in one step on the Redis server.

* ``WRITE_IF_NEWER``: incremental writes; a row never replaces one with a later event time
  (or, at the same event time, a later created time); the same times replace (a correction).
* ``READ``: the generations being served and the values, in one atomic step
  (``READ_LOCAL``: the same on one master of a Redis Cluster; ``READ_LOGGED``: the same, and
  the served-value log's entry of what it read).
* ``COMMIT`` and the lock scripts: compare-and-set on the lock token, so a sync that lost its
  lock cannot publish anything.

"""

from __future__ import annotations

WRITE_IF_NEWER = """
local head = tonumber(ARGV[1])
local created, written, now = 0, 0, nil
for i = 1, #KEYS do
  local key, field, blob, pxat = KEYS[i], ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
  local old = redis.call('HGET', key, field)
  local write = true
  if old then
    local oe, oc, ne, nc = 0, 0, 0, 0
    if head == 16 then
      oe, oc = struct.unpack('>i8i8', old)
      ne, nc = struct.unpack('>i8i8', blob)
    else
      oe = struct.unpack('>i8', old)
      ne = struct.unpack('>i8', blob)
    end
    if ne < oe or (ne == oe and nc < oc) then write = false end
  else
    created = created + 1
  end
  if write then
    written = written + 1
    redis.call('HSET', key, field, blob)
    if pxat ~= '0' then
      local left = redis.call('PTTL', key)
      if left >= 0 and not now then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      if left < 0 or tonumber(pxat) > now + left then
        redis.call('PEXPIREAT', key, pxat)
      end
    end
  end
end
return {created, written}
"""
"""Conditional writes into bucket hashes. ``KEYS``: each row's bucket; ``ARGV``: the blobs'
head size (8, or 16 with a created time), then per row its field, blob and expiry (ms, ``0``:
none). A bucket's expiry only ever rises (``PEXPIREAT .. GT`` done by hand: Redis 6.2, the
embedded server, lacks it)."""

READ = """
local nv = tonumber(ARGV[1])
local out = {}
for i = 1, nv do out[i] = redis.call('GET', KEYS[i]) end
for i = nv + 1, #KEYS do out[i] = redis.call('HGET', KEYS[i], ARGV[i - nv + 1]) end
return out
"""
"""A read in one step: ``KEYS`` are the views' ``P:V:gen`` keys (``ARGV[1]`` of them), then one
bucket per value wanted, its field in ``ARGV``; returns the generations, then the blobs."""

READ_LOGGED = """
local nv = tonumber(ARGV[1])
local nk = #KEYS - 1
local a = nk - nv + 2
local out = {}
for i = 1, nv do out[i] = redis.call('GET', KEYS[i]) end
for i = nv + 1, nk do out[i] = redis.call('HGET', KEYS[i], ARGV[i - nv + 1]) end
for i = 1, nv do
  if out[i] ~= ARGV[a + 4 + i] then return out end
end
local ok, blobs = pcall(table.concat, out, '', nv + 1, nk)
local missing = ''
if not ok then
  local present, absent = {}, {}
  for i = nv + 1, nk do
    if out[i] then present[#present + 1] = out[i] else absent[#absent + 1] = i - nv - 1 end
  end
  blobs, missing = table.concat(present), table.concat(absent, ',')
end
local added = redis.pcall('XADD', KEYS[nk + 1], 'MAXLEN', '~', ARGV[a], '*',
  't', ARGV[a + 1], 'r', ARGV[a + 2], 'v', ARGV[a + 3],
  'g', table.concat(ARGV, ',', a + 5, a + 4 + nv), 'k', ARGV[a + 4], 'b', blobs, 'm', missing)
if type(added) == 'table' and added.err then out[nk + 1] = 0 else out[nk + 1] = 1 end
return out
"""
"""``READ`` with the served-value log's entry (``served_log``) written in the same step: the
entry holds exactly the values the read returns, and costs the read no extra round trip and no
thread of the reader's process. ``KEYS``: ``READ``'s, then the log's stream; ``ARGV``:
``READ``'s, then the stream's length bound, the entry's ``t``, ``r``, ``v`` and ``k`` fields and
the generations the reader expects. When a generation differs the reader reads again: nothing
is logged. Otherwise one more element follows the blobs: 1 when the entry was added, 0 when
Redis refused the write (out of memory, ``min-replicas-to-write``, a key of another type:
``pcall``, so the read is answered all the same; a script without flags may still write).

The blobs go in as one concatenation (``b``; a blob's schema tells where it ends) and the
positions of the values not found (``m``): one C call when every value was found. Measured in
Redis's own time (``INFO commandstats``) for 200 values of 100 bytes: the read alone 87 us,
logged so 146 us, logged in ``marshal``'s list format built value by value 160 us; 40 of the
59 us are Lua allocating the 20 KB string (its garbage collector's work grows with the bytes
allocated: ``string.rep`` of as many bytes costs the same)."""

READ_LOCAL = """#!lua flags=allow-cross-slot-keys,no-writes
local nv = tonumber(ARGV[2])
local out = {ARGV[1]}
for i = 1, nv do out[i + 1] = redis.call('GET', ARGV[2 + i]) end
local n = nv + 1
for i = nv + 3, #ARGV, 2 do
  n = n + 1
  out[n] = redis.call('HGET', ARGV[i], ARGV[i + 1])
end
return out
"""
"""``READ`` for one master of a Redis Cluster, over the keys of many slots it serves:
``ARGV[1]`` a tag of the call, echoed first in the answer (the reader checks that an answer is
its call's), ``ARGV[2]`` generation keys follow, then key and field pairs. The keys are
arguments, not
``KEYS``: a cluster refuses declared keys of several slots in one call even with
``allow-cross-slot-keys`` (Redis 7), which lets a script reach the node's own keys; a key the
node does not serve fails the call, and the reader learns the slots again."""

NEW_GENERATION = """
redis.call('HSETNX', KEYS[1], 'gen_seq', ARGV[1])
local number = redis.call('HINCRBY', KEYS[1], 'gen_seq', 1)
redis.call('HSET', KEYS[1], 'pending', number, 'pending_started', ARGV[2])
return number
"""
"""The number of a full refresh's new generation (``KEYS[1]`` the meta hash, ``ARGV``: the
clock in seconds, where numbering starts, and the start time), recorded as ``pending`` so that a
sync killed midway has its keys deleted by the next one."""

COMMIT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST the sync lock expired or was taken over')
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[3], ARGV[2]) end
local nset = tonumber(ARGV[3])
for i = 0, nset - 1 do
  redis.call('HSET', KEYS[1], ARGV[4 + 2 * i], ARGV[5 + 2 * i])
end
for i = 4 + 2 * nset, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return 1
"""

LOCK_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

LOCK_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

LOCK_STEAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

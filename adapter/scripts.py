"""Server-side Lua scripts: what must happen in one step on the Redis server.

* ``READ``: resolve each view's current generation and MGET its entity keys, in one call, so
  a read sees one complete snapshot per view even while a full refresh switches generations.
* ``WRITE_IF_NEWER``: incremental writes; a row never replaces one with a later event time
  (or, at the same event time, a later created time); the same times replace (a correction).
* ``COMMIT`` and the lock scripts: compare-and-set on the lock token, so a sync that lost its
  lock cannot publish anything.

The read script builds key names from the generation it reads, so it is for a single Redis
(or a replica set), not Redis Cluster.
"""

from __future__ import annotations

READ = """
local out = {}
local a = 1
for v = 1, #KEYS do
  local base, cached, n = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  local gen = redis.call('HGET', KEYS[v], 'gen')
  if not gen then
    out[v] = {}
  else
    local schema = ''
    if gen ~= cached then schema = redis.call('HGET', KEYS[v], 'schema') end
    local vals = {}
    local i = 0
    while i < n do
      local m = math.min(n - i, 4000)
      local ks = {}
      for j = 1, m do ks[j] = base .. gen .. ':' .. ARGV[a + i + j - 1] end
      local got = redis.call('MGET', unpack(ks))
      for j = 1, m do vals[i + j] = got[j] end
      i = i + m
    end
    out[v] = {gen, schema, vals}
  end
  a = a + n
end
return out
"""

WRITE_IF_NEWER = """
local created, written = 0, 0
for i = 1, #KEYS do
  local blob, pxat = ARGV[2 * i - 1], ARGV[2 * i]
  local old = redis.call('GETRANGE', KEYS[i], 0, 15)
  local write = true
  if string.len(old) == 16 then
    local oe, oc = struct.unpack('>i8i8', old)
    local ne, nc = struct.unpack('>i8i8', blob)
    if ne < oe or (ne == oe and nc < oc) then write = false end
  else
    created = created + 1
  end
  if write then
    written = written + 1
    if pxat == '0' then
      redis.call('SET', KEYS[i], blob)
    else
      redis.call('SET', KEYS[i], blob, 'PXAT', pxat)
    end
  end
end
return {created, written}
"""

COMMIT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('LOCKLOST the sync lock expired or was taken over')
end
local nset = tonumber(ARGV[2])
for i = 0, nset - 1 do
  redis.call('HSET', KEYS[1], ARGV[3 + 2 * i], ARGV[4 + 2 * i])
end
for i = 3 + 2 * nset, #ARGV do
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

"""Server-side Lua scripts: what must happen in one step on the Redis server.

* ``WRITE_IF_NEWER``: incremental writes; a row never replaces one with a later event time
  (or, at the same event time, a later created time); the same times replace (a correction).
* ``COMMIT`` and the lock scripts: compare-and-set on the lock token, so a sync that lost its
  lock cannot publish anything.

"""

from __future__ import annotations

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

-- status.lua: set an account active / blocked / deleted and tell the front
-- ends about its live sessions (blocked or deleted: abort them, Gy ASR or
-- RADIUS Disconnect). KEYS: 1 account hash, 2 open-session set,
-- 3 notifications stream, 4 balance, 5 reference key, 6 audit stream.
local req = cmsgpack.unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[5])
if dup then return dup end
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status or acct.status == 'deleted' then return cmsgpack.pack({e = 'user_unknown'}) end
redis.call('HSET', KEYS[1], 'status', req.status, 'updated', req.now)
local n = 0
if req.status ~= 'active' then
  for _, sid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    local s = unpack_blob(redis.call('GET', KEYS[1] .. ':s:' .. sid))
    if s and s.st == 'open' then
      publish(KEYS[3], req.kind, s.acct, sid, s.owner, s.attrs)
      n = n + 1
    end
  end
end
local ops = {active = 'unblock', blocked = 'block', deleted = 'delete'}
local money = money_total(load_balance(KEYS[4]))
audit(KEYS[6], req, {op = ops[req.status] or req.status, acct = req.acct, cur = acct.currency,
  from = acct.status, to = req.status, mb = money, ma = money, sessions = n})
return remember_ref(req.ref, KEYS[5], cmsgpack.pack({ok = 1, sessions = n, from = acct.status}))

-- status.lua: set an account active / blocked / deleted and tell the front
-- ends about its live sessions (blocked or deleted: abort them, Gy ASR or
-- RADIUS Disconnect). KEYS: 1 account hash, 2 open-session set,
-- 3 notifications stream, 4 reference key, 5 audit stream.
-- ARGV[1] = msgpack {acct, now, status, kind, ref, au}.
local req, done, acct, list = admin_open(KEYS[4], KEYS[1])
if done then return done end
call('HSET', KEYS[1], 'status', req.status, 'updated', req.now)
local n = 0
if req.status ~= 'active' then
  n = publish_sessions(KEYS[2], KEYS[1], KEYS[3], req.kind, req.acct, nil)
end
local ops = {active = 'unblock', blocked = 'block', deleted = 'delete'}
local money = money_total(list)
audit(KEYS[5], req, {op = ops[req.status] or req.status, acct = req.acct, cur = acct.currency,
  from = acct.status, to = req.status, mb = money, ma = money, sessions = n})
return remember_ref(req.ref, KEYS[4], mp_pack({ok = 1, sessions = n, from = acct.status}))

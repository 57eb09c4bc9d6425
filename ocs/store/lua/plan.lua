-- plan.lua: move an account to another plan; its live sessions are
-- re-authorised (Gy RAR, RADIUS CoA) so the new tariffs apply from their
-- next request. The caller renews the new plan's allowances after it.
-- KEYS: 1 account hash, 2 open-session set, 3 notifications stream,
-- 4 balance, 5 reference key, 6 audit stream.
local req = cmsgpack.unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[5])
if dup then return dup end
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status or acct.status == 'deleted' then return cmsgpack.pack({e = 'user_unknown'}) end
if (acct.currency or '') ~= req.currency then
  return cmsgpack.pack({e = 'currency', currency = acct.currency})
end
redis.call('HSET', KEYS[1], 'plan', req.plan, 'updated', req.now)
local n = 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local s = unpack_blob(redis.call('GET', KEYS[1] .. ':s:' .. sid))
  if s and s.st == 'open' then
    publish(KEYS[3], 'policy_change', s.acct, sid, s.owner, s.attrs)
    n = n + 1
  end
end
local money = money_total(load_balance(KEYS[4]))
audit(KEYS[6], req, {op = 'plan', acct = req.acct, cur = acct.currency, from = acct.plan,
  to = req.plan, mb = money, ma = money, sessions = n})
return remember_ref(req.ref, KEYS[5], cmsgpack.pack({ok = 1, from = acct.plan, sessions = n}))

-- plan.lua: move an account to another plan; its live sessions are
-- re-authorised (Gy RAR, RADIUS CoA) so the new tariffs apply from their
-- next request. The caller renews the new plan's allowances after it.
-- KEYS: 1 account hash, 2 open-session set, 3 notifications stream,
-- 4 reference key, 5 audit stream.
local req, done, acct, list = admin_open(KEYS[4], KEYS[1])
if done then return done end
if (acct.currency or '') ~= req.currency then
  return mp_pack({e = 'currency', currency = acct.currency})
end
call('HSET', KEYS[1], 'plan', req.plan, 'updated', req.now)
local n = publish_sessions(KEYS[2], KEYS[1], KEYS[3], 'policy_change', req.acct, nil)
local money = money_total(list)
audit(KEYS[5], req, {op = 'plan', acct = req.acct, cur = acct.currency, from = acct.plan,
  to = req.plan, mb = money, ma = money, sessions = n})
return remember_ref(req.ref, KEYS[4], mp_pack({ok = 1, from = acct.plan, sessions = n}))

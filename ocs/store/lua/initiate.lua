-- initiate.lua: open a session and reserve quota per service
-- (RFC 4006 §5.2 CCR-I; RADIUS Accounting-Start / Access-Request).
-- A blocked account gets nothing reserved and no session (standards §2.6:
-- "CCR-I fails: stay Idle, nothing reserved").
if blocked then return reply({e = 'blocked'}) end
if sess and sess.st ~= 'open' then return reply({e = 'unknown_session'}) end
if not sess then sess = open_session() end

local bal = load_balance(KEYS[2])
local before = money_available(bal, now)
local out = serve(bal, sess, req.svcs, now, false, true)
local result = {a = req.acct, svcs = out, cur = acct.currency}
remember(sess, req.rk, result)
local limited = false
for _, r in ipairs(out) do
  if r.st == 'credit_limit_reached' then limited = true end
end
balance_events(KEYS[7], sess, req.acct, before, money_available(bal, now), req.lowb, limited)
store_open(sess)
save_balance(KEYS[2], bal, now)
return reply(result)

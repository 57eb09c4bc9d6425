-- update.lua: debit the reported usage, release the old reservation and
-- reserve again (RFC 4006 §5.3 CCR-U; RADIUS Interim-Update). A blocked
-- account still pays its usage and gets no new grant (standards §2.8, 4010).
-- Unknown session: opened implicitly when the caller allows it (RADIUS
-- Interim without Start), else UNKNOWN_SESSION (standards §2.9).
if sess and sess.st ~= 'open' then return reply({e = 'unknown_session'}) end
if not sess then
  if req.create ~= 1 then return reply({e = 'unknown_session'}) end
  sess = open_session()
end

local bal = load_balance(KEYS[2])
local before = money_available(bal, now)
local out = serve(bal, sess, req.svcs, now, blocked, true)
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

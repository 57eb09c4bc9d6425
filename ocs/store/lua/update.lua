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
local out = serve(bal, sess, req.svcs, now, blocked, true)
local result = {a = req.acct, svcs = out, cur = acct.currency}
remember(sess, req.rk, result)
store_open(sess)
save_balance(KEYS[2], bal, now)
return reply(result)

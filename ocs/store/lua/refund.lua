-- refund.lua: REFUND_ACCOUNT (RFC 4006 §6.4): credit money back to the
-- account's main money bucket, idempotently, with a record of negative charge.
local q = req.svc
local bal = load_balance(KEYS[2])
local main = find_bucket(bal, 'main')
if not main then
  main = {id = 'main', unit = 'money', amt = 0, res = 0, exp = 0, pri = 1000000, svc = {}, floor = 0}
  bal.b[#bal.b + 1] = main
end
main.amt = sat_add(main.amt, req.amount)
save_balance(KEYS[2], bal, now)
event_record(q, q.used, -req.amount, 'refund', {})
local result = {st = 'granted', cost = req.amount, u = q.u, cur = acct.currency}
remember_event(result)
return reply(result)

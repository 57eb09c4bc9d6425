-- refund.lua: REFUND_ACCOUNT (RFC 4006 §6.4): credit money back to the
-- account's main money bucket, idempotently, with a record of negative charge.
local q = req.svc
local list = bucket_list(bal)
local main = nil
for _, b in ipairs(list) do
  if b.id == 'main' then main = b end
end
if not main then
  main = {id = 'main', unit = 'money', amt = 0, res = 0, exp = 0, pri = 1000000, svc = {},
    floor = 0}
  list[#list + 1] = main
end
main.amt = sat_add(main.amt, req.amount)
store_buckets(KEYS[1], list, now)
event_record(q, q.used, -req.amount, 'refund', {})
local result = {st = 'granted', cost = req.amount, u = q.u, cur = bal.currency}
remember_event(result)
return reply(result)

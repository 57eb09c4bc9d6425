-- event.lua: one-shot DIRECT_DEBITING or CHECK_BALANCE (RFC 4006 §5.4,
-- §6.3). All or nothing: the units are covered in full by unit buckets then
-- money, or nothing is taken and the answer is CREDIT_LIMIT_REACHED.
-- CHECK_BALANCE changes nothing and stores nothing.
if bal.status ~= 'active' then return reply({e = 'blocked'}) end
local q = req.svc
local t = q.t
local rg, sid = q.rg or -1, q.sid or -1
local units = chain(bal.M, UNIT_CODES[q.ru], rg, sid)
local from_units = math.min(sum_avail(bal, units), q.u)
local money_cost = cost(t, 1, q.u - from_units)
local money = chain(bal.M, MONEY, rg, sid)
local enough = money_cost <= sum_avail(bal, money)
if req.op == 'check' then
  return reply({enough = enough and 1 or 0, cost = cost(t, 1, q.u), cur = bal.currency})
end
local result
if not enough then
  result = {st = 'credit_limit_reached', cost = 0, u = 0, cur = bal.currency}
else
  local fb = {}
  take(bal, units, from_units, false, fb, bal.M.id)
  take(bal, money, money_cost, false)
  save_balance(KEYS[1], bal)
  event_record(q, q.used, money_cost, 'event', fb)
  result = {st = 'granted', cost = money_cost, u = q.u, cur = bal.currency}
end
remember_event(result)
return reply(result)

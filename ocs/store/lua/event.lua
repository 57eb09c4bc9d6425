-- event.lua: one-shot DIRECT_DEBITING or CHECK_BALANCE (RFC 4006 §5.4,
-- §6.3). All or nothing: the units are covered in full by unit buckets then
-- money, or nothing is taken and the answer is CREDIT_LIMIT_REACHED.
-- CHECK_BALANCE changes nothing and stores nothing.
if acct.status ~= 'active' then return reply({e = 'blocked'}) end
local q = req.svc
local bal = load_balance(KEYS[2])
local units = chain(bal, q.ru, q.rg, q.sid, now)
local from_units = math.min(sum_avail(units), q.u)
local money_cost = cost(q.t, q.u - from_units)
local money = chain(bal, 'money', q.rg, q.sid, now)
local enough = money_cost <= sum_avail(money)
if req.op == 'check' then
  return reply({enough = enough and 1 or 0, cost = cost(q.t, q.u), cur = acct.currency})
end
local result
if not enough then
  result = {st = 'credit_limit_reached', cost = 0, u = 0, cur = acct.currency}
else
  local fb = {}
  take(units, from_units, false, fb)
  take(money, money_cost, false)
  save_balance(KEYS[2], bal, now)
  event_record(q, q.used, money_cost, 'event', fb)
  result = {st = 'granted', cost = money_cost, u = q.u, cur = acct.currency}
end
remember_event(result)
return reply(result)

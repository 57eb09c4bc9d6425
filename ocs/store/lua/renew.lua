-- renew.lua: renew a plan's recurring allowances for one billing period.
-- KEYS: 1 account hash, 2 audit stream. ARGV[1] = msgpack {acct, now, plan,
-- period, allowances = [{name, unit, amount, svc, exp, pct, max, pri}], au}.
-- A renewal that changed something appends one audit entry.
-- Idempotent: the account remembers the period each allowance was renewed
-- for, so running it twice in a period renews once. The previous period's
-- bucket keeps only what is reserved from it (sessions in flight finish on
-- it); rollover_percent of what was left moves to the new bucket.
local req = mp_unpack(ARGV[1])
local now = req.now
local acct, list, refused = admin_account(KEYS[1], now)
if not acct then return refused end
if (acct.plan or '') ~= req.plan then return mp_pack({e = 'stale', plan = acct.plan}) end
local mb = money_total(list)
local renewed, names = 0, {}
for _, a in ipairs(req.allowances) do
  local field = 'renewed:' .. a.name
  if acct[field] ~= req.period then
    local carry = 0
    local prefix = 'plan:' .. a.name .. ':'
    for _, b in ipairs(list) do
      if sub(b.id, 1, #prefix) == prefix then
        local left = b.amt - b.res - b.floor
        if left < 0 then left = 0 end
        local c = floor(left / 100) * a.pct + floor((left % 100) * a.pct / 100)
        if a.max and a.max > 0 and c > a.max then c = a.max end
        carry = carry + c
        b.amt = b.res + b.floor  -- the rest of the old period is forfeited or carried
      end
    end
    list[#list + 1] = {id = prefix .. req.period, unit = a.unit, amt = sat_add(a.amount, carry),
      res = 0, exp = a.exp, pri = a.pri, svc = a.svc, floor = 0}
    call('HSET', KEYS[1], field, req.period)
    renewed = renewed + 1
    names[#names + 1] = a.name
  end
end
if renewed > 0 then
  list = store_buckets(KEYS[1], list, now)
  audit(KEYS[2], req, {op = 'renew', acct = req.acct, cur = acct.currency, plan = req.plan,
    period = req.period, allowances = names, mb = mb, ma = money_total(list)})
end
return mp_pack({ok = 1, renewed = renewed})

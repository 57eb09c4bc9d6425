-- credit.lua: top-up or adjustment of one bucket (CLI, admin API).
-- KEYS: 1 account hash, 2 open-session set, 3 reference key, 4 notifications
-- stream, 5 audit stream. ARGV[1] = msgpack {acct, now, delta, bucket spec,
-- kind, ref, au}. A repeated reference changes nothing (a payment applied
-- once) and answers the first reply marked `dup`. A negative adjustment
-- never takes a bucket below its floor plus what is reserved. Live sessions
-- are told (the notifications stream) so the front ends re-authorise them
-- (Gy RAR, RADIUS CoA).
local req, done, acct, list = admin_open(KEYS[3], KEYS[1])
if done then return done end
local now = req.now
local mb = money_total(list)
local spec = req.b
local b = find_in(list, spec.id)
if not b then
  if req.delta < 0 then return mp_pack({e = 'no_bucket'}) end
  b = {id = spec.id, unit = spec.unit, amt = 0, res = 0, exp = spec.exp or 0,
       pri = spec.pri or 100, svc = spec.svc or {}, floor = spec.floor or 0}
  list[#list + 1] = b
elseif b.unit ~= spec.unit then
  return mp_pack({e = 'unit_mismatch', unit = b.unit})
end
if req.delta < 0 and b.amt + req.delta < b.floor + b.res then
  local left = b.amt - b.res - b.floor
  return mp_pack({e = 'below_floor', available = left > 0 and left or 0})
end
local before = b.amt
b.amt = sat_add(b.amt, req.delta)
if spec.exp and spec.exp > 0 then b.exp = spec.exp end
local after, bexp = b.amt, b.exp
list = store_buckets(KEYS[1], list, now)
-- A bundle for some rating groups re-authorises just those (a scoped RAR).
local rgs = {}
local svc = b.svc or {}
for i = 1, #svc, 2 do
  if svc[i] ~= -1 then rgs[#rgs + 1] = svc[i] end
end
local _, total = publish_sessions(KEYS[2], KEYS[1], KEYS[4], req.kind, req.acct, rgs)
audit(KEYS[5], req, {op = req.kind, acct = req.acct, cur = acct.currency, bucket = b.id,
  unit = b.unit, delta = req.delta, before = before, after = after, exp = bexp, mb = mb,
  ma = money_total(list), sessions = total})
return remember_ref(req.ref, KEYS[3],
  mp_pack({ok = 1, bucket = b.id, amt = after, before = before, sessions = total}))

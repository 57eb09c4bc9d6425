-- credit.lua: top-up or adjustment of one bucket (CLI, admin API).
-- KEYS: 1 account hash, 2 balance, 3 open-session set, 4 reference key,
-- 5 notifications stream, 6 audit stream. ARGV[1] = msgpack {now, delta,
-- bucket spec, kind, ref, au}. A repeated reference changes nothing (a
-- payment applied once) and answers the first reply marked `dup`. A
-- negative adjustment never takes a bucket below its floor plus what is
-- reserved. Live sessions are told (the notifications stream) so the
-- front ends re-authorise them (Gy RAR, RADIUS CoA).
local req = cmsgpack.unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[4])
if dup then return dup end
local now = req.now
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status or acct.status == 'deleted' then return cmsgpack.pack({e = 'user_unknown'}) end
local bal = load_balance(KEYS[2])
local mb = money_total(bal)
local spec = req.b
local b = find_bucket(bal, spec.id)
if not b then
  if req.delta < 0 then return cmsgpack.pack({e = 'no_bucket'}) end
  b = {id = spec.id, unit = spec.unit, amt = 0, res = 0, exp = spec.exp or 0,
       pri = spec.pri or 100, svc = spec.svc or {}, floor = spec.floor or 0}
  bal.b[#bal.b + 1] = b
elseif b.unit ~= spec.unit then
  return cmsgpack.pack({e = 'unit_mismatch', unit = b.unit})
end
if req.delta < 0 and b.amt + req.delta < (b.floor or 0) + b.res then
  return cmsgpack.pack({e = 'below_floor', available = avail(b)})
end
local before = b.amt
b.amt = sat_add(b.amt, req.delta)
if spec.exp and spec.exp > 0 then b.exp = spec.exp end
local after, bexp = b.amt, b.exp
save_balance(KEYS[2], bal, now)
-- A bundle for some rating groups re-authorises just those (a scoped RAR).
local rgs = {}
for _, pair in ipairs(b.svc or {}) do
  if pair[1] and pair[1] ~= -1 then rgs[#rgs + 1] = pair[1] end
end
local sessions = redis.call('SMEMBERS', KEYS[3])
local base = KEYS[1]
for _, sid in ipairs(sessions) do
  local s = unpack_blob(redis.call('GET', base .. ':s:' .. sid))
  if s and s.st == 'open' then
    publish(KEYS[5], req.kind, s.acct, sid, s.owner, s.attrs, rgs)
  end
end
audit(KEYS[6], req, {op = req.kind, acct = req.acct, cur = acct.currency, bucket = b.id,
  unit = b.unit, delta = req.delta, before = before, after = after, exp = bexp, mb = mb,
  ma = money_total(bal), sessions = #sessions})
return remember_ref(req.ref, KEYS[4],
  cmsgpack.pack({ok = 1, bucket = b.id, amt = after, before = before, sessions = #sessions}))

-- create.lua: a new account with its identities and opening buckets.
-- KEYS: 1 account hash, 2 identities, 3 reference key, 4 audit stream.
-- ARGV[1] = msgpack {acct, now, currency, plan, ids, buckets = [{id, unit,
-- amt, exp, pri, svc, floor}], test, ref, au}. Fails if the id exists
-- (unless the reference was seen: replay).
local req = mp_unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[3])
if dup then return dup end
if call('EXISTS', KEYS[1]) == 1 then return mp_pack({e = 'exists'}) end
call('HSET', KEYS[1], 'status', 'active', 'currency', req.currency, 'plan', req.plan,
  'created', req.now, 'updated', req.now)
-- A load-test account: the exporter leaves its records out (export.exclude_test_accounts).
if req.test == 1 then call('HSET', KEYS[1], 'test', 1) end
for _, id in ipairs(req.ids) do call('SADD', KEYS[2], id) end
local list = {}
for i, s in ipairs(req.buckets) do
  list[i] = {id = s.id, unit = s.unit, amt = s.amt, res = 0, exp = s.exp or 0, pri = s.pri or 100,
    floor = s.floor or 0, svc = s.svc or {}}
end
store_buckets(KEYS[1], list, nil)
audit(KEYS[4], req, {op = 'create', acct = req.acct, cur = req.currency, plan = req.plan,
  ids = req.ids, mb = 0, ma = money_total(list), test = req.test or 0})
return remember_ref(req.ref, KEYS[3], mp_pack({ok = 1, acct = req.acct}))

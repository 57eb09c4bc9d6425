-- create.lua: a new account with its identities and opening buckets.
-- KEYS: 1 account hash, 2 balance, 3 identities, 4 reference key, 5 audit
-- stream. Fails if the id exists (unless the reference was seen: replay).
local req = cmsgpack.unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[4])
if dup then return dup end
if redis.call('EXISTS', KEYS[1]) == 1 then return cmsgpack.pack({e = 'exists'}) end
redis.call('HSET', KEYS[1], 'status', 'active', 'currency', req.currency, 'plan', req.plan,
  'created', req.now, 'updated', req.now)
-- A load-test account: the exporter leaves its records out (export.exclude_test_accounts).
if req.test == 1 then redis.call('HSET', KEYS[1], 'test', 1) end
for _, id in ipairs(req.ids) do redis.call('SADD', KEYS[3], id) end
local bal = {b = req.buckets}
redis.call('SET', KEYS[2], cmsgpack.pack(bal))
audit(KEYS[5], req, {op = 'create', acct = req.acct, cur = req.currency, plan = req.plan,
  ids = req.ids, mb = 0, ma = money_total(bal), test = req.test or 0})
return remember_ref(req.ref, KEYS[4], cmsgpack.pack({ok = 1, acct = req.acct}))

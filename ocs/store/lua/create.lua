-- create.lua: a new account with its identities and opening buckets.
-- KEYS: 1 account hash, 2 balance, 3 identities. Fails if the id exists.
local req = cmsgpack.unpack(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return cmsgpack.pack({e = 'exists'}) end
redis.call('HSET', KEYS[1], 'status', 'active', 'currency', req.currency, 'plan', req.plan,
  'created', req.now, 'updated', req.now)
for _, id in ipairs(req.ids) do redis.call('SADD', KEYS[3], id) end
local bal = {b = req.buckets}
redis.call('SET', KEYS[2], cmsgpack.pack(bal))
return cmsgpack.pack({ok = 1})

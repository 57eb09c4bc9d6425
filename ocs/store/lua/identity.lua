-- identity.lua: add an identity to an account, or remove one (never its
-- last). The identity index (its own slot) is claimed before an add and
-- freed after a removal by the caller; this script owns the account's set.
-- KEYS: 1 account hash, 2 identities, 3 reference key, 4 audit stream, 5 balance.
local req = cmsgpack.unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[3])
if dup then return dup end
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status or acct.status == 'deleted' then return cmsgpack.pack({e = 'user_unknown'}) end
local op = 'identity_add'
if req.remove == 1 then
  op = 'identity_remove'
  if redis.call('SISMEMBER', KEYS[2], req.ident) == 0 then
    return cmsgpack.pack({e = 'not_found'})
  end
  if redis.call('SCARD', KEYS[2]) <= 1 then return cmsgpack.pack({e = 'last_identity'}) end
  redis.call('SREM', KEYS[2], req.ident)
elseif redis.call('SADD', KEYS[2], req.ident) == 0 then
  return cmsgpack.pack({e = 'present'})
end
redis.call('HSET', KEYS[1], 'updated', req.now)
local money = money_total(load_balance(KEYS[5]))
audit(KEYS[4], req, {op = op, acct = req.acct, cur = acct.currency, ident = req.ident,
  mb = money, ma = money})
return remember_ref(req.ref, KEYS[3], cmsgpack.pack({ok = 1}))

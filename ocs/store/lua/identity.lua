-- identity.lua: add an identity to an account, or remove one (never its
-- last). The identity index (its own slot) is claimed before an add and
-- freed after a removal by the caller; this script owns the account's set.
-- KEYS: 1 account hash, 2 identities, 3 reference key, 4 audit stream.
local req, done, acct, list = admin_open(KEYS[3], KEYS[1])
if done then return done end
local op = 'identity_add'
if req.remove == 1 then
  op = 'identity_remove'
  if call('SISMEMBER', KEYS[2], req.ident) == 0 then
    return mp_pack({e = 'not_found'})
  end
  if call('SCARD', KEYS[2]) <= 1 then return mp_pack({e = 'last_identity'}) end
  call('SREM', KEYS[2], req.ident)
elseif call('SADD', KEYS[2], req.ident) == 0 then
  return mp_pack({e = 'present'})
end
call('HSET', KEYS[1], 'updated', req.now)
local money = money_total(list)
audit(KEYS[4], req, {op = op, acct = req.acct, cur = acct.currency, ident = req.ident,
  mb = money, ma = money})
return remember_ref(req.ref, KEYS[3], mp_pack({ok = 1}))

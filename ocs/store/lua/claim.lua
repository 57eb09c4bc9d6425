-- claim.lua: point one identity at an account, or let go of it. The
-- identity index (ocs/store/keys.py identity_index) is a Cluster slot of
-- its own, so each identity is one call (ocs/accounts.py claims them in the
-- order of their keys); the account's own set of identities is written by
-- create.lua and identity.lua in the account's slot.
-- KEYS: 1 identity index. ARGV: 1 account id, 2 'claim' or 'release'.
-- claim: 'new' (the index names the account now), 'ours' (it already did)
-- or 'taken' (another account has the identity). release: deletes the
-- index only while it names the account (compare and delete): 1, else 0.
local held = redis.call('GET', KEYS[1])
if ARGV[2] == 'release' then
  if held ~= ARGV[1] then return 0 end
  redis.call('DEL', KEYS[1])
  return 1
end
if not held then
  redis.call('SET', KEYS[1], ARGV[1])
  return 'new'
end
if held == ARGV[1] then return 'ours' end
return 'taken'

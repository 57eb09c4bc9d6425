-- expire.lua: give one bucket a new expiry. At or before `now` it expires
-- at once: what it held is forfeited here (its amount set to zero, so the
-- money of the account drops in this call and this audit entry, not later
-- when a charging script prunes it), and live sessions are re-authorised
-- (what they had reserved from it is released at their next request).
-- KEYS: 1 account hash, 2 open-session set, 3 notifications stream,
-- 4 reference key, 5 audit stream.
local req, done, acct, list = admin_open(KEYS[4], KEYS[1])
if done then return done end
local now = req.now
local mb = money_total(list)
local b = find_in(list, req.bucket)
if not b then return mp_pack({e = 'no_bucket'}) end
local before = b.amt
local at = req.at
local n = 0
if at <= now then
  at = now
  b.amt = 0
  n = publish_sessions(KEYS[2], KEYS[1], KEYS[3], 'adjust', req.acct, nil)
end
b.exp = at
local after = b.amt
list = store_buckets(KEYS[1], list, now)
audit(KEYS[5], req, {op = 'expire', acct = req.acct, cur = acct.currency, bucket = b.id,
  unit = b.unit, delta = after - before, before = before, after = after, exp = at, mb = mb,
  ma = money_total(list), sessions = n})
return remember_ref(req.ref, KEYS[4],
  mp_pack({ok = 1, bucket = b.id, before = before, amt = after, exp = at, sessions = n}))

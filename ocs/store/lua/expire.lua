-- expire.lua: give one bucket a new expiry. At or before `now` it expires
-- at once: what it held is forfeited here (its amount set to zero, so the
-- money of the account drops in this call and this audit entry, not later
-- when a charging script prunes it), and live sessions are re-authorised
-- (what they had reserved from it is released at their next request).
-- KEYS: 1 account hash, 2 balance, 3 open-session set, 4 notifications
-- stream, 5 reference key, 6 audit stream.
local req = cmsgpack.unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[5])
if dup then return dup end
local now = req.now
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status or acct.status == 'deleted' then return cmsgpack.pack({e = 'user_unknown'}) end
local bal = load_balance(KEYS[2])
local mb = money_total(bal)
local b = find_bucket(bal, req.bucket)
if not b then return cmsgpack.pack({e = 'no_bucket'}) end
local before = b.amt
local at = req.at
local n = 0
if at <= now then
  at = now
  b.amt = 0
  for _, sid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local s = unpack_blob(redis.call('GET', KEYS[1] .. ':s:' .. sid))
    if s and s.st == 'open' then
      publish(KEYS[4], 'adjust', s.acct, sid, s.owner, s.attrs)
      n = n + 1
    end
  end
end
b.exp = at
save_balance(KEYS[2], bal, now)
audit(KEYS[6], req, {op = 'expire', acct = req.acct, cur = acct.currency, bucket = b.id,
  unit = b.unit, delta = b.amt - before, before = before, after = b.amt, exp = at, mb = mb,
  ma = money_total(bal), sessions = n})
return remember_ref(req.ref, KEYS[5],
  cmsgpack.pack({ok = 1, bucket = b.id, before = before, amt = b.amt, exp = at, sessions = n}))

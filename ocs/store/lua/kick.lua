-- kick.lua: an operator ends one live session. The session is not closed
-- here: its front end is told (notifications stream, kind `terminate`: Gy
-- ASR, RADIUS Disconnect, Nchf ABORT_CHARGING) and the gateway's own
-- termination charges and records it as usual; one that never answers is
-- closed by supervision. KEYS: 1 account hash, 2 session, 3 notifications
-- stream, 4 reference key, 5 audit stream, 6 balance.
local req = cmsgpack.unpack(ARGV[1])
local dup = replayed(req.ref, KEYS[4])
if dup then return dup end
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status or acct.status == 'deleted' then return cmsgpack.pack({e = 'user_unknown'}) end
local s = unpack_blob(redis.call('GET', KEYS[2]))
if not s or s.st ~= 'open' then return cmsgpack.pack({e = 'no_session'}) end
publish(KEYS[3], 'terminate', s.acct, req.sid, s.owner, s.attrs)
local money = money_total(load_balance(KEYS[6]))
audit(KEYS[5], req, {op = 'terminate', acct = req.acct, cur = acct.currency, sess = req.sid,
  owner = s.owner, mb = money, ma = money})
return remember_ref(req.ref, KEYS[4], cmsgpack.pack({ok = 1, owner = s.owner}))

-- kick.lua: an operator ends one live session. The session is not closed
-- here: its front end is told (notifications stream, kind `terminate`: Gy
-- ASR, RADIUS Disconnect, Nchf ABORT_CHARGING) and the gateway's own
-- termination charges and records it as usual; one that never answers is
-- closed by supervision. KEYS: 1 account hash, 2 session, 3 notifications
-- stream, 4 reference key, 5 audit stream.
local req, done, acct, list = admin_open(KEYS[4], KEYS[1])
if done then return done end
local s = call('HMGET', KEYS[2], 'st', 'o', 'at')
if s[1] ~= 'open' then return mp_pack({e = 'no_session'}) end
local owner = s[2] or ''
publish(KEYS[3], 'terminate', req.acct, req.sid, owner, s[3] and mp_unpack(s[3]) or {})
local money = money_total(list)
audit(KEYS[5], req, {op = 'terminate', acct = req.acct, cur = acct.currency, sess = req.sid,
  owner = owner, mb = money, ma = money})
return remember_ref(req.ref, KEYS[4], mp_pack({ok = 1, owner = owner}))

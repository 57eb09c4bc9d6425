-- initiate.lua: open a session and reserve quota per service
-- (RFC 4006 §5.2 CCR-I; RADIUS Accounting-Start / Access-Request).
-- A blocked account gets nothing reserved and no session (standards §2.6:
-- "CCR-I fails: stay Idle, nothing reserved"). A repeated initiate for an
-- open session (a new request key) continues it.
local f = read_fields()
local H, by_key = decode_hot(f[2])
-- A repeat gets its stored answer; a number too old to tell, a refusal.
local again = kept_answer(f[5], rk)
if again then return again end
if blocked then return 'Eblocked' end
if not current(f[1], true) then return 'Eunknown_session' end
return serve_and_keep(f, H, by_key, false)

-- initiate.lua: open a session and reserve quota per service
-- (RFC 4006 §5.2 CCR-I; RADIUS Accounting-Start / Access-Request).
-- A blocked account gets nothing reserved and no session (standards §2.6:
-- "CCR-I fails: stay Idle, nothing reserved"). A repeated initiate for an
-- open session (a new request key) continues it.
if blocked then return reply({e = 'blocked'}) end
sess = current_session(true)
if not sess then return reply({e = 'unknown_session'}) end
return serve_and_keep(false)

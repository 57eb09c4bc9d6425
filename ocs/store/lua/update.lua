-- update.lua: debit the reported usage, release the old reservation and
-- reserve again (RFC 4006 §5.3 CCR-U; RADIUS Interim-Update). A blocked
-- account still pays its usage and gets no new grant (standards §2.8, 4010).
-- Unknown session: opened implicitly when the caller allows it (RADIUS
-- Interim without Start), else UNKNOWN_SESSION (standards §2.9).
local f = read_fields()
local H, by_key = decode_hot(f[2])
-- A repeat gets its stored answer; a number too old to tell, a refusal.
local again = kept_answer(f[5], rk)
if again then return again end
if not current(f[1], A[6] == 1) then return 'Eunknown_session' end
return serve_and_keep(f, H, by_key, blocked)

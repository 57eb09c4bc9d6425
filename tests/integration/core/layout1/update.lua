-- update.lua: debit the reported usage, release the old reservation and
-- reserve again (RFC 4006 §5.3 CCR-U; RADIUS Interim-Update). A blocked
-- account still pays its usage and gets no new grant (standards §2.8, 4010).
-- Unknown session: opened implicitly when the caller allows it (RADIUS
-- Interim without Start), else UNKNOWN_SESSION (standards §2.9).
sess = current_session(req.create == 1)
if not sess then return reply({e = 'unknown_session'}) end
return serve_and_keep(blocked)

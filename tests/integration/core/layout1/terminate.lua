-- terminate.lua: debit the final usage, release every reservation, append
-- the charged-session record and close (RFC 4006 §5.5 CCR-T; RADIUS Stop).
-- Debit and record happen in this one call: never one without the other.
-- Unknown session: still charged and recorded when the caller allows it
-- (RADIUS Stop without Start, standards §3.4), else UNKNOWN_SESSION.
sess = current_session(req.create == 1)
if not sess then return reply({e = 'unknown_session'}) end

local bal = load_balance(KEYS[2])
local before = money_available(bal, now)
local out = serve(bal, sess, req.svcs, now, blocked, false)
release_all(bal, sess)
write_record(KEYS[6], sess, acct, now, req.cause, 'session', req.acct .. '/' .. req.sid, req.tax)
local result = {a = req.acct, svcs = out, cur = acct.currency}
if opened then result.new = 1 end
balance_events(KEYS[7], sess, req.acct, before, money_available(bal, now), req.lowb, false)
store_closed()
save_balance(KEYS[2], bal, now)
return answer(result)

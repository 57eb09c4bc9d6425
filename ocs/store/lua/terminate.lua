-- terminate.lua: debit the final usage, release every reservation, append
-- the charged-session record and close (RFC 4006 §5.5 CCR-T; RADIUS Stop).
-- Debit and record happen in this one call: never one without the other.
-- Unknown session: still charged and recorded when the caller allows it
-- (RADIUS Stop without Start, standards §3.4), else UNKNOWN_SESSION.
local f, H, by_key, kept = read_closing(KEYS[3], afield)
-- A repeat gets its stored answer; a number too old to tell, a refusal.
local again = kept_answer(kept, rk)
if again then return again end
if not current(f.st, A[6] == 1) then return 'Eunknown_session' end
local new = add_new(by_key)
local statics = nil
if new then
  statics = {}
  for k, o in lnext, new do statics[k] = static_of(o) end
end
local before = money_available(bal)
local out = {opened and 1 or 0}
serve(A, bal, svcs, by_key, H and H[1] or now, blocked, false, out)
local view = session_view(f)
if opened then
  view = {ids = A[10] ~= '' and mp_unpack(A[10]) or {}, owner = owner, start = now, pv = pv}
end
write_record(KEYS[5], close_services(bal, f, by_key, statics), view, acct_id, sid, bal.currency,
  now, A[12], 'session', A[13])
local answer = mp_pack(out)
events(before, f.o, f.at, false)
-- Closed, the session keeps only what answers a repeat: its answers (its
-- services' state went into the record).
mark_closed(KEYS[3], KEYS[4], sid, {'h', next_hot(H, {}, now), afield, keep_answer(rk, answer)})
save_balance(KEYS[1], bal)
return answer

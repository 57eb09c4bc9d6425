-- abandon.lua: close a session the gateway never terminated (supervision
-- timer, RFC 4006 §5.5 Tcc expiry), or every session of a peer that
-- restarted / a NAS that rebooted (force = 1). Releases the reservations and
-- writes the record with the given cause; a later update gets UNKNOWN_SESSION.
-- KEYS: 1 account hash, 2 open-session set, 3 session hash, 4 records.
-- ARGV[1]: msgpack {acct, sid, now, cause, force, before, owner, taxes};
-- the record's tax rate is the one of the account's plan (`taxes`: plan ->
-- ppm, 0 for a plan the policy lacks).
bind()
local req = cmsgpack.unpack(ARGV[1])
local now = req.now
local f, H, by_key = read_closing(KEYS[3])
if f.st ~= 'open' then
  redis.call('SREM', KEYS[2], req.sid)
  return cmsgpack.pack({gone = 1})
end
local dl = H and H[2] or 0
if req.force == 1 then
  -- Only the owner's own sessions: one that moved to another peer lives on.
  if req.owner and req.owner ~= '' and (f.o or '') ~= req.owner then
    return cmsgpack.pack({moved = 1})
  end
  if req.before and req.before > 0 and (tonumber(f.start) or 0) >= req.before then
    return cmsgpack.pack({alive = dl})
  end
elseif dl > now then
  return cmsgpack.pack({alive = dl})
end
local a = redis.call('HMGET', KEYS[1], 'plan', 'currency', 'm', 'b')
if not a[3] then return cmsgpack.pack({e = 'migrate'}) end
local bal = {M = meta_of(a[3]), B = cmsgpack.unpack(a[4]), now = now, dirty = false}
local tax = (req.taxes or {})[a[1] or ''] or 0
write_record(KEYS[4], close_services(bal, f, by_key), session_view(f), req.acct, req.sid,
  a[2] or '', now, req.cause, 'session', tax)
mark_closed(KEYS[3], KEYS[2], req.sid, {})
save_balance(KEYS[1], bal)
return cmsgpack.pack({closed = 1})

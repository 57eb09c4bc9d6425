-- abandon.lua: close a session the gateway never terminated (supervision
-- timer, RFC 4006 §5.5 Tcc expiry), or every session of a peer that
-- restarted / a NAS that rebooted (force = 1). Releases the reservations and
-- writes the record with the given cause; a later update gets UNKNOWN_SESSION.
-- KEYS: 1 account hash, 2 balance, 3 open-session set, 4 session, 5 records,
-- 6 the session's answers, 7 their order. The record's tax rate is the one of
-- the account's plan (`taxes`: plan -> ppm, 0 for a plan the policy lacks).
local req = cmsgpack.unpack(ARGV[1])
local now = req.now
local sess = unpack_blob(redis.call('GET', KEYS[4]))
if not sess or sess.st ~= 'open' then
  redis.call('SREM', KEYS[3], req.sid)
  return cmsgpack.pack({gone = 1})
end
if req.force == 1 then
  -- Only the owner's own sessions: one that moved to another peer lives on.
  if req.owner and req.owner ~= '' and sess.owner ~= req.owner then
    return cmsgpack.pack({moved = 1})
  end
  if req.before and req.before > 0 and sess.start >= req.before then
    return cmsgpack.pack({alive = sess.dl})
  end
elseif sess.dl > now then
  return cmsgpack.pack({alive = sess.dl})
end
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
local bal = load_balance(KEYS[2])
release_all(bal, sess)
local tax = (req.taxes or {})[acct.plan or ''] or 0
write_record(KEYS[5], sess, acct, now, req.cause, 'session', sess.acct .. '/' .. sess.sid, tax)
close_session(sess, now, KEYS[4], KEYS[6], KEYS[7], KEYS[3])
save_balance(KEYS[2], bal, now)
return cmsgpack.pack({closed = 1})

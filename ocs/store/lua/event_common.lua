-- event_common.lua: opening checks of the one-shot scripts (after lib.lua).
-- KEYS: 1 account hash, 2 balance, 3 identities, 4 event answer key,
-- 5 records stream.
local req = cmsgpack.unpack(ARGV[1])
local now = req.now

local function reply(t) return cmsgpack.pack(t) end

local acct, refused = load_account(req, KEYS[1], KEYS[3])
if not acct then return reply(refused) end

-- An event id answered before is answered again, identically, changing nothing.
local prev = unpack_blob(redis.call('GET', KEYS[4]))
if prev then
  prev.replay = 1
  return reply(prev)
end

local function remember_event(result)
  redis.call('SET', KEYS[4], cmsgpack.pack(result), 'EX', req.ttl)
end

local function event_record(q, used, charged, kind, fb)
  local sess = {acct = req.acct, ids = req.ids, sid = req.eid, owner = req.owner,
    start = now, pv = req.pv,
    svc = {[q.k] = {k = q.k, nm = q.nm, rg = q.rg, sid = q.sid, used = used,
      ch = charged, sf = 0, fb = fb or {}}}}
  write_record(KEYS[5], sess, acct, now, req.cause, kind, 'ev/' .. req.acct .. '/' .. req.eid, req.tax)
end

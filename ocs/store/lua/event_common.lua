-- event_common.lua: opening checks of the one-shot scripts (after lib.lua).
-- KEYS: 1 account hash, 2 identities, 3 event answer key, 4 records stream.
-- ARGV[1]: msgpack {eid, now, acct, ik, plan, ids, owner, pv, ttl, tax,
-- cause, op, svc = {k, nm, rg, sid, ru, u, t (6 integers), used}, amount}.
bind()
local req = cmsgpack.unpack(ARGV[1])
local now = req.now

local function reply(t) return cmsgpack.pack(t) end

local bal, refused = load_account(KEYS[1], KEYS[2], req.ik or '', req.plan, now)
if not bal then return reply({e = refused}) end

-- An event id answered before is answered again, identically, changing nothing.
local prev = redis.call('GET', KEYS[3])
if prev then
  prev = cmsgpack.unpack(prev)
  prev.replay = 1
  return reply(prev)
end

local function remember_event(result)
  redis.call('SET', KEYS[3], cmsgpack.pack(result), 'EX', req.ttl)
end

local function event_record(q, used, charged, kind, fb)
  local svc = {service = q.k, name = q.nm, rating_group = q.rg, service_id = q.sid,
    used = used, charged = charged, shortfall = 0, from_buckets = fb or {}}
  local view = {ids = req.ids, owner = req.owner, start = now, pv = req.pv}
  write_record(KEYS[4], {svc}, view, req.acct, req.eid, bal.currency, now, req.cause, kind,
    req.tax)
end

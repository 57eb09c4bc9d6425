-- session_common.lua: the opening checks of the three session scripts
-- (prepended after lib.lua). KEYS: 1 account hash, 2 balance, 3 identities,
-- 4 open-session set, 5 session, 6 records stream, 7 notifications stream.

local req = cmsgpack.unpack(ARGV[1])
local now = req.now

local function reply(t) return cmsgpack.pack(t) end

local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status or acct.status == 'deleted' then return reply({e = 'user_unknown'}) end
-- The caller resolved identity -> account and plan from a cache: if either
-- moved since, say so and let it re-resolve (the authoritative data is here).
if req.ik and req.ik ~= '' and redis.call('SISMEMBER', KEYS[3], req.ik) == 0 then
  return reply({e = 'stale'})
end
if req.plan ~= (acct.plan or '') then return reply({e = 'stale', plan = acct.plan}) end

local sess = unpack_blob(redis.call('GET', KEYS[5]))
if sess then
  local prev = sess.ans[req.rk]
  if prev then
    prev.replay = 1
    return reply(prev)
  end
end

local function open_session()
  return {sid = req.sid, acct = req.acct, ids = req.ids, owner = req.owner,
    attrs = req.attrs, start = now, last = now, st = 'open', pv = req.pv,
    svc = {}, ans = {}, order = {}, dl = now + req.sup}
end

local function store_open(sess)
  sess.last = now
  sess.dl = now + req.sup
  redis.call('SET', KEYS[5], cmsgpack.pack(sess))
  redis.call('SADD', KEYS[4], req.sid)
end

-- A closed session keeps its answers for a day so repeats are replayed.
local function store_closed(sess)
  sess.st = 'closed'
  sess.last = now
  redis.call('SET', KEYS[5], cmsgpack.pack(sess), 'EX', 86400)
  redis.call('SREM', KEYS[4], req.sid)
end

local blocked = acct.status ~= 'active'

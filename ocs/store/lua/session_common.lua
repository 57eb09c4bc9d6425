-- session_common.lua: the opening checks and shared steps of the three
-- session scripts (prepended after lib.lua). KEYS: 1 account hash,
-- 2 balance, 3 identities, 4 open-session set, 5 session, 6 records stream,
-- 7 notifications stream.

local req = cmsgpack.unpack(ARGV[1])
local now = req.now

local function reply(t) return cmsgpack.pack(t) end

local acct, refused = load_account(req, KEYS[1], KEYS[3])
if not acct then return reply(refused) end

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

-- The open session this request continues: nil for a closed one (its
-- answers were replayed above) and for an unknown one unless `may_create`.
local function current_session(may_create)
  if sess then
    if sess.st ~= 'open' then return nil end
    return sess
  end
  if not may_create then return nil end
  return open_session()
end

local function store_open()
  sess.last = now
  sess.dl = now + req.sup
  redis.call('SET', KEYS[5], cmsgpack.pack(sess))
  redis.call('SADD', KEYS[4], req.sid)
end

-- A closed session keeps its answers for a day so repeats are replayed.
local function store_closed()
  sess.st = 'closed'
  sess.last = now
  redis.call('SET', KEYS[5], cmsgpack.pack(sess), 'EX', 86400)
  redis.call('SREM', KEYS[4], req.sid)
end

-- Serve every service (usage, then a new reservation unless `deny`), keep
-- the session open, remember the answer: initiate and update.
local function serve_and_keep(deny)
  local bal = load_balance(KEYS[2])
  local before = money_available(bal, now)
  local out = serve(bal, sess, req.svcs, now, deny, true)
  local result = {a = req.acct, svcs = out, cur = acct.currency}
  remember(sess, req.rk, result)
  local limited = false
  for _, r in ipairs(out) do
    if r.st == 'credit_limit_reached' then limited = true end
  end
  balance_events(KEYS[7], sess, req.acct, before, money_available(bal, now), req.lowb, limited)
  store_open()
  save_balance(KEYS[2], bal, now)
  return reply(result)
end

local blocked = acct.status ~= 'active'

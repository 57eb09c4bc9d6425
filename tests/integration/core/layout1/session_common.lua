-- session_common.lua: the opening checks and shared steps of the three
-- session scripts (prepended after lib.lua). KEYS: 1 account hash,
-- 2 balance, 3 identities, 4 open-session set, 5 session, 6 records stream,
-- 7 notifications stream, 8 the session's answers (hash: request key ->
-- packed answer), 9 their order (list).

local req = cmsgpack.unpack(ARGV[1])
local now = req.now

local function reply(t) return cmsgpack.pack(t) end

local acct, refused = load_account(req, KEYS[1], KEYS[3])
if not acct then return reply(refused) end

-- A request key answered before gets that answer again, changing nothing
-- (marked with a leading "R": a packed answer is a map, never starts so).
local prev = redis.call('HGET', KEYS[8], req.rk)
if prev then return 'R' .. prev end

local sess = unpack_blob(redis.call('GET', KEYS[5]))

local function open_session()
  return {sid = req.sid, acct = req.acct, ids = req.ids, owner = req.owner,
    attrs = req.attrs, start = now, last = now, st = 'open', pv = req.pv,
    svc = {}, dl = now + req.sup}
end

-- True once this call opened the session: the answer says so (`new`), and
-- a caller that skipped the index writes (it believed the session known)
-- makes them then.
local opened = false

-- The open session this request continues: nil for a closed one (its
-- answers were replayed above) and for an unknown one unless `may_create`.
local function current_session(may_create)
  if sess then
    if sess.st ~= 'open' then return nil end
    return sess
  end
  if not may_create then return nil end
  opened = true
  return open_session()
end

-- Store the open session and the balance (pruned) in one write.
local function store_open(bal)
  -- The front end's latest view of the session (a Diameter session moved to
  -- another peer, a new Framed-IP): pushes go where the session now is.
  if req.owner and req.owner ~= '' then sess.owner = req.owner end
  if req.attrs and #req.attrs > 0 then sess.attrs = req.attrs end
  sess.last = now
  sess.dl = now + req.sup
  prune(bal, now)
  redis.call('MSET', KEYS[5], cmsgpack.pack(sess), KEYS[2], cmsgpack.pack(bal))
  -- An open session read from its key joined the open-session set in the
  -- call that opened it and leaves only when closed (close_session, abandon):
  -- only a session opened by this call is added.
  if opened then redis.call('SADD', KEYS[4], req.sid) end
end

local function store_closed()
  close_session(sess, now, KEYS[5], KEYS[8], KEYS[9], KEYS[4])
end

-- Store the answer under the request key and send it.
local function answer(result)
  local packed = cmsgpack.pack(result)
  remember(KEYS[8], KEYS[9], req.rk, packed)
  return packed
end

-- Serve every service (usage, then a new reservation unless `deny`), keep
-- the session open, remember the answer: initiate and update.
local function serve_and_keep(deny)
  local bal = load_balance(KEYS[2])
  local before = money_available(bal, now)
  local out = serve(bal, sess, req.svcs, now, deny, true)
  local result = {a = req.acct, svcs = out, cur = acct.currency}
  if opened then result.new = 1 end
  local limited = false
  for _, r in ipairs(out) do
    if r.st == 'credit_limit_reached' then limited = true end
  end
  balance_events(KEYS[7], sess, req.acct, before, money_available(bal, now), req.lowb, limited)
  store_open(bal)
  return answer(result)
end

local blocked = acct.status ~= 'active'

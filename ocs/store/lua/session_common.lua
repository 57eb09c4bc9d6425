-- session_common.lua: the opening checks and shared steps of the three
-- session scripts (prepended after lib.lua). The state machine they enforce
-- is the table in ocs/store/session_states.py.
-- KEYS: 1 account hash, 2 identities, 3 session hash, 4 open-session set,
-- 5 records stream, 6 notifications stream.
-- ARGV[1]: one msgpack list, positional (ocs/store/calls.py pack_session):
-- now, request key (an integer when numbered: layout.py "Answers"),
-- account, identity key, plan, create, supervision, owner, attributes
-- (msgpack), identities (msgpack), policy version, cause, tax ppm, session
-- id, thresholds (count, values), services (count, then each as
-- services_of in lib.lua reads it).
-- Replies: 'E' .. error code (too_old: a numbered request older than the
-- answers kept); 'R' .. a stored answer (a repeat, nothing changed); or
-- the answer: msgpack list (opened, then key, status, granted, final,
-- charged, shortfall per service).

bind()
local A = mp_unpack(ARGV[1])
local now, rk, acct_id = A[1], A[2], A[3]
local sup, owner, attrs, pv, sid = A[7], A[8], A[9], A[11], A[14]
local afield = answer_field(rk)  -- where this request's answer is kept

local bal, refused = load_account(KEYS[1], KEYS[2], A[4], A[5], now)
if not bal then return 'E' .. refused end

local svcs = services_of(A, 16 + A[15])
local blocked = bal.status ~= 'active'
local opened = false  -- this call opened the session: the answer says so

-- May this request go on? True for the open session it continues, or for
-- one it opens; false for a closed session (a repeat was answered before)
-- and for an unknown one unless `may_create`.
local function current(st, may_create)
  if st then return st == 'open' end
  if not may_create then return false end
  opened = true
  return true
end


-- A service's name and ids, kept for its record (written once).
local function static_of(o)
  local s = {nm = A[o + 1], ru = UNIT_NAMES[A[o + 4]]}
  if A[o + 2] ~= -1 then s.rg = A[o + 2] end
  if A[o + 3] ~= -1 then s.sid = A[o + 3] end
  return s
end

-- The request's services not yet in the session get a fresh state;
-- returns their fields' positions by key (nil if none).
local function add_new(by_key)
  local new = nil
  for s = 1, #svcs do
    local o = svcs[s]
    local k = A[o]
    if not by_key[k] then
      by_key[k] = new_service(k)
      new = new or {}
      new[k] = o
    end
  end
  return new
end

-- The new hot state: times, answers so far, every service.
local function next_hot(H, by_key, deadline)
  local NH = {now, deadline, (H and H[3] or 0) + 1}
  encode_services(NH, HOT_SERVICES - 1, by_key)
  return mp_pack(NH)
end

-- Low-balance / exhaustion events: the owner and attributes the session now has.
local function events(before, stored_owner, stored_attrs, limited)
  local after = money_available(bal)
  local nthr = A[15]
  if nthr == 0 and not limited and not (before > 0 and after <= 0) then return end
  local thresholds = {}
  for j = 1, nthr do thresholds[j] = A[15 + j] end
  local o = owner ~= '' and owner or stored_owner or ''
  local raw = attrs ~= '' and attrs or stored_attrs
  balance_events(KEYS[6], sid, o, raw and mp_unpack(raw) or {}, acct_id, before, after,
    thresholds, limited)
end

-- The session fields an initiate or update reads: state, hot state, owner,
-- attributes, this request's answer slot.
local function read_fields()
  return call('HMGET', KEYS[3], 'st', 'h', 'o', 'at', afield)
end

-- Serve every service (usage, then a new reservation unless `deny`), keep
-- the session open, remember the answer: initiate and update. Only what
-- changed is written: the hot state, the answer, the amounts (and a new
-- service's name, a new owner or attributes, the fields of an opening).
local function serve_and_keep(f, H, by_key, deny)
  by_key = by_key or {}
  local new = add_new(by_key)
  local before = money_available(bal)
  local out = {opened and 1 or 0}
  local limited = serve(A, bal, svcs, by_key, H and H[1] or now, deny, true, out)
  local answer = mp_pack(out)
  events(before, f[3], f[4], limited)
  local w = {'HSET', KEYS[3], 'h', next_hot(H, by_key, now + sup), afield, keep_answer(rk, answer)}
  local n = 6
  if new then
    for k, o in lnext, new do
      w[n + 1], w[n + 2] = 'n:' .. k, mp_pack(static_of(o))
      n = n + 2
    end
  end
  if opened then
    w[n + 1], w[n + 2], w[n + 3], w[n + 4], w[n + 5], w[n + 6] = 'st', 'open', 'start', now, 'pv', pv
    n = n + 6
    if A[10] ~= '' then
      w[n + 1], w[n + 2] = 'ids', A[10]
      n = n + 2
    end
  end
  -- The front end's latest view of the session (a Diameter session moved to
  -- another peer, a new Framed-IP): pushes go where the session now is.
  if owner ~= '' and owner ~= f[3] then
    w[n + 1], w[n + 2] = 'o', owner
    n = n + 2
  end
  if attrs ~= '' and attrs ~= f[4] then
    w[n + 1], w[n + 2] = 'at', attrs
  end
  call(tunpack(w))
  -- A session joins the open-session set in the call that opens it and
  -- leaves it only when closed.
  if opened then call('SADD', KEYS[4], sid) end
  save_balance(KEYS[1], bal)
  return answer
end

-- lib.lua: helpers shared by every balance script (prepended at load time).
--
-- Integers only: Lua 5.1 numbers are doubles, exact to 2^53; the Python side
-- saturates every quantity at MAX before calling, and math.floor is applied to
-- every division. State is msgpack (cmsgpack), which packs integral numbers as
-- msgpack integers, never as floats.

local MAX = 9007199254740991  -- 2^53 - 1, the largest exact integer

local function unpack_blob(raw)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end

local function sat_add(a, b)
  local s = a + b
  if s > MAX then return MAX end
  return s
end

-- Tariff t: fu/fp first block (units, price), bu/bp next blocks, r rounding
-- (0 per started block, 1 completed blocks only, 2 nearest), free (1/0).
-- Price of a cumulative quantity u of money-rated units in one session. The
-- block count is computed inline: cost() runs several times per service of
-- every request, and a Lua call costs more than the division.
local function cost(t, u)
  if u <= 0 or t.free == 1 then return 0 end
  local c = t.fp
  local rest = u - t.fu
  if rest > 0 then
    local bu, r, n = t.bu, t.r, nil
    if r == 1 then
      n = math.floor(rest / bu)
    elseif r == 2 then
      n = math.floor((2 * rest + bu) / (2 * bu))
    else
      n = math.floor((rest + bu - 1) / bu)
    end
    local bp = t.bp
    if bp > 0 and n > (MAX - c) / bp then return MAX end
    c = c + n * bp
  end
  return c
end

-- Largest g <= want with cost(c0 + g) - cost(c0) <= money (binary search; the
-- cost is a monotone step function, so this holds for every tariff shape),
-- and that price (the caller takes it from the balance).
local function grantable(t, c0, want, money)
  if t.free == 1 then return want, 0 end
  local base = cost(t, c0)
  local price = cost(t, c0 + want) - base
  if price <= money then return want, price end
  local lo, hi, lo_price = 0, want, 0
  while lo < hi do
    -- Not (lo + hi + 1) / 2: above 2^53 that sum rounds, mid can equal lo
    -- and the loop never ends (a busy server) once lo passes 2^52.
    local mid = lo + math.floor((hi - lo + 1) / 2)
    local p = cost(t, c0 + mid) - base
    if p <= money then lo, lo_price = mid, p else hi = mid - 1 end
  end
  return lo, lo_price
end

local function affordable(t, c0, want, money)
  local g = grantable(t, c0, want, money)
  return g
end

-- The hot loops below index lists with a numeric for and inline avail()
-- and live(): in the server's Lua a function call costs about as much as
-- seven table reads, and these loops run for every service of every request.

-- Does bucket b apply to service (rg, sid)? An empty list applies to all.
local function applies(b, rg, sid)
  local svcs = b.svc
  if not svcs or #svcs == 0 then return true end
  for _, s in ipairs(svcs) do
    local brg, bsid = s[1], s[2]
    if (brg == nil or brg == -1 or brg == rg) and (bsid == nil or bsid == -1 or bsid == sid) then
      return true
    end
  end
  return false
end

local function avail(b)
  local a = b.amt - b.res - (b.floor or 0)
  if a < 0 then return 0 end
  return a
end

local function live(b, now)
  return b.exp == nil or b.exp == 0 or b.exp > now
end

-- Consumption order: priority, then earliest expiry (never-expiring last),
-- then id.
local function consumed_first(x, y)
  if x.pri ~= y.pri then return x.pri < y.pri end
  local ex = (x.exp == nil or x.exp == 0) and MAX or x.exp
  local ey = (y.exp == nil or y.exp == 0) and MAX or y.exp
  if ex ~= ey then return ex < ey end
  return x.id < y.id
end

-- Buckets of one unit for one service, in consumption order. Expired
-- buckets never count. Which buckets a chain holds, and their order, depend
-- only on fields no script changes while it charges (unit, services,
-- expiry, priority, id), so a chain built once serves a whole request;
-- amounts are read live from the bucket tables it shares with the balance.
local function chain(bal, unit, rg, sid, now)
  local list, out, n = bal.b, {}, 0
  for i = 1, #list do
    local b = list[i]
    local exp = b.exp
    if b.unit == unit and (exp == nil or exp == 0 or exp > now) and applies(b, rg, sid) then
      n = n + 1
      out[n] = b
    end
  end
  if n > 1 then table.sort(out, consumed_first) end
  return out
end

local function find_bucket(bal, id)
  local list = bal.b
  for i = 1, #list do
    if list[i].id == id then return list[i] end
  end
  return nil
end

local function sum_avail(list)
  local s = 0
  for i = 1, #list do
    local b = list[i]
    local a = b.amt - b.res - (b.floor or 0)
    if a > 0 then
      s = s + a
      if s > MAX then s = MAX end
    end
  end
  return s
end

-- Take up to n from the chain's available amounts (reserve them, or debit
-- them); returns what was taken, and adds it by bucket id to `into` if given.
local function take(list, n, mark_reserved, into)
  local got = 0
  for i = 1, #list do
    if got >= n then break end
    local b = list[i]
    local a = b.amt - b.res - (b.floor or 0)
    if a > n - got then a = n - got end
    if a > 0 then
      if mark_reserved then b.res = b.res + a else b.amt = b.amt - a end
      if into then into[b.id] = (into[b.id] or 0) + a end
      got = got + a
    end
  end
  return got
end

local function release(bal, res)
  if not res then return end
  for id, a in pairs(res) do
    local b = find_bucket(bal, id)
    if b then
      b.res = b.res - a
      if b.res < 0 then b.res = 0 end
    end
  end
end

-- Reserve for service state sv: `want` units of its rated unit from its
-- unit chain first, then money through tariff t. Returns granted units,
-- final flag.
local function reserve(sv, want, t, units, money)
  sv.res = {}
  if want <= 0 then return 0, false end
  if t.free == 1 then return want, false end
  local got = take(units, want, true, sv.res)
  if got < want then
    local g, price = grantable(t, sv.mu, want - got, sum_avail(money))
    take(money, price, true, sv.res)
    got = got + g
  end
  return got, got < want
end

-- Charge `u` rated units just used: unit buckets, then money through tariff t;
-- what the balance cannot cover (down to each bucket's floor) is a shortfall.
local function debit(sv, u, t, units, money)
  if u <= 0 then return 0, 0 end
  local rest = u - take(units, u, false, sv.fb)
  if rest <= 0 or t.free == 1 then return 0, 0 end
  local m = cost(t, sv.mu + rest) - cost(t, sv.mu)
  sv.mu = sat_add(sv.mu, rest)
  local paid = take(money, m, false)
  return paid, m - paid
end

-- Apply one service's usage reports (each with its own tariff: before/after a
-- tariff switch). Cumulative reports (RADIUS) are turned into deltas here: a
-- total below the last starts a new epoch and is charged from zero.
-- Split u units over tariff segments {{start, tariff}, ...} (ascending
-- starts) in proportion to each segment's share of [last, now]; the last
-- overlapping segment takes the rounding remainder so nothing is lost.
local function split_by_time(u, segs, last, now)
  local span = now - last
  if span <= 0 then return {{u, segs[#segs][2]}} end
  local parts, given = {}, 0
  for i, seg in ipairs(segs) do
    local s0 = math.max(seg[1], last)
    local s1 = now
    if segs[i + 1] then s1 = math.min(segs[i + 1][1], now) end
    if s1 > s0 then parts[#parts + 1] = {s1 - s0, seg[2]} end
  end
  if #parts == 0 then return {{u, segs[#segs][2]}} end
  local out = {}
  for i, p in ipairs(parts) do
    local n = math.floor(u * p[1] / span)
    if i == #parts then n = u - given end
    given = given + n
    out[#out + 1] = {n, p[2]}
  end
  return out
end

local function apply_reports(sv, reps, now, last, default_t, units, money)
  local charged, short = 0, 0
  local ru, used, cum = sv.ru, sv.used, sv.cum
  for i = 1, (reps and #reps or 0) do
    local rep = reps[i]
    local u = 0
    for unit, v in pairs(rep.u) do
      local d = v
      if rep.cum == 1 then
        local prev = cum[unit] or 0
        if v >= prev then d = v - prev end
        cum[unit] = v
      end
      if unit == ru then u = d end
      used[unit] = sat_add(used[unit] or 0, d)
    end
    if rep.segs and #rep.segs > 1 then
      -- No Tariff-Change-Usage but the interval since the last report spans
      -- tariff switches: split the usage in proportion to the time spent
      -- under each tariff (policies/README.md, "Tariff switches").
      for _, part in ipairs(split_by_time(u, rep.segs, last, now)) do
        local c, s = debit(sv, part[1], part[2], units, money)
        charged = charged + c
        short = short + s
      end
    else
      local c, s = debit(sv, u, rep.t or default_t, units, money)
      charged = charged + c
      short = short + s
    end
  end
  sv.ch = sv.ch + charged
  sv.sf = sv.sf + short
  return charged, short
end

-- Dynamic grant sizing: a share of what the balance can pay for this
-- service, at least dyn.min (when the balance pays that much), never more
-- than asked. A low balance gets smaller grants, so reports come sooner.
local function share(aff, pct)
  return math.floor(aff / 100) * pct + math.floor((aff % 100) * pct / 100)
end

-- share() is monotone in the amount, so once the share of `cap` covers
-- `want`, any affordable amount beyond `cap` gives the same grant: the
-- search stops there instead of bisecting up to MAX (about 53 steps of two
-- cost() calls whenever the balance covers more than the grant).
local function share_cap(want, pct)
  if pct <= 0 then return MAX end
  local cap = 100 * (math.floor(want / pct) + 1)
  if cap < MAX and share(cap, pct) >= want then return cap end
  return MAX
end

local function dynamic_want(sv, want, t, dyn, units, money)
  local cap = share_cap(want, dyn.pct)
  local aff = sum_avail(units)
  if aff < cap then
    aff = aff + affordable(t, sv.mu, cap - aff, sum_avail(money))
  else
    aff = cap
  end
  local target = share(aff, dyn.pct)
  if dyn.min and dyn.min > 0 and target < dyn.min then target = dyn.min end
  if target < want then return target end
  return want
end

-- Money available to the account (all money buckets, any service).
local function money_available(bal, now)
  local list, total = bal.b, 0
  for i = 1, #list do
    local b = list[i]
    local exp = b.exp
    if b.unit == 'money' and (exp == nil or exp == 0 or exp > now) then
      local a = b.amt - b.res - (b.floor or 0)
      if a > 0 then total = total + a end
    end
  end
  return total
end

-- Low-balance and exhaustion events for integrations (notifications stream
-- only: they are not pushes to the gateways).
local function balance_events(stream, sess, acct_id, before, after, thresholds, limited)
  if not stream or stream == '' then return end
  for _, thr in ipairs(thresholds or {}) do
    if before >= thr and after < thr then
      redis.call('XADD', stream, 'MAXLEN', '~', '10000', '*', 'n', cmsgpack.pack({k = 'low_balance',
        a = acct_id, s = sess.sid, o = sess.owner, at = sess.attrs, bal = after, thr = thr}))
    end
  end
  if limited or (before > 0 and after <= 0) then
    redis.call('XADD', stream, 'MAXLEN', '~', '10000', '*', 'n', cmsgpack.pack({k = 'exhausted',
      a = acct_id, s = sess.sid, o = sess.owner, at = sess.attrs, bal = after}))
  end
end

local function new_service(q)
  return {k = q.k, nm = q.nm, rg = q.rg, sid = q.sid, ru = q.ru,
          res = {}, used = {}, cum = {}, fb = {}, mu = 0, ch = 0, sf = 0}
end

-- Serve each service of a request: usage first, then the new reservation.
-- `deny` grants nothing (blocked account) but still debits the usage
-- (RFC 4006 §5.6.3 / standards §2.8: debit any USU on 4010).
local function serve(bal, sess, svcs, now, deny, grant)
  local out = {}
  for i = 1, #svcs do
    local q = svcs[i]
    local sv = sess.svc[q.k]
    if not sv then
      sv = new_service(q)
      sess.svc[q.k] = sv
    end
    release(bal, sv.res)
    sv.res = {}
    local units = chain(bal, sv.ru, sv.rg, sv.sid, now)
    local money = chain(bal, 'money', sv.rg, sv.sid, now)
    local ch, sf = apply_reports(sv, q.rep, now, sess.last or now, q.t, units, money)
    local r = {k = q.k, ch = ch, sf = sf, g = 0, fin = 0, st = 'granted'}
    if deny then
      r.st = 'service_denied'
    elseif grant and q.want >= 0 then
      local want = q.want
      if q.dyn and want > 0 then want = dynamic_want(sv, want, q.t, q.dyn, units, money) end
      local g, final = reserve(sv, want, q.t, units, money)
      r.g = g
      if final then r.fin = 1 end
      if q.want > 0 and g == 0 then r.st = 'credit_limit_reached' end
    end
    out[i] = r
  end
  return out
end

local function release_all(bal, sess)
  for _, sv in pairs(sess.svc) do
    release(bal, sv.res)
    sv.res = {}
  end
end

-- Buckets spent to zero, or expired, with nothing reserved are dropped so the
-- blob stays small; money buckets without expiry stay (they carry the floor).
local function prune(bal, now)
  local list, keep, n = bal.b, {}, 0
  for i = 1, #list do
    local b = list[i]
    local exp = b.exp
    local spent = b.amt <= 0 and b.unit ~= 'money'
    local dead = not (exp == nil or exp == 0 or exp > now)
    if b.res > 0 or not (spent or dead) then
      n = n + 1
      keep[n] = b
    end
  end
  bal.b = keep
end

-- Gross -> net + tax at rate ppm, net rounded half up, computed without ever
-- multiplying the whole gross by 10^6 (exact for every gross below 2^53).
local function split_tax(gross, ppm)
  if ppm <= 0 then return gross, 0 end
  local d = 1000000 + ppm
  local q = math.floor(gross / d)
  local rem = gross - q * d
  local net = q * 1000000 + math.floor((rem * 1000000 + math.floor(d / 2)) / d)
  return net, gross - net
end

-- The charged-session record (ocs/charging/records.py), appended in the same
-- call as the debit so neither exists without the other.
local function write_record(stream, sess, acct, now, cause, kind, rid, ppm)
  local services, total, short = {}, 0, 0
  for _, sv in pairs(sess.svc) do
    services[#services + 1] = {service = sv.k, name = sv.nm, rating_group = sv.rg,
      service_id = sv.sid, used = sv.used, charged = sv.ch, shortfall = sv.sf,
      from_buckets = sv.fb}
    total = total + sv.ch
    short = short + sv.sf
  end
  table.sort(services, function(a, b) return a.service < b.service end)
  local net, tax = split_tax(total, ppm)
  local rec = {v = 1, id = rid, kind = kind, account = sess.acct, identities = sess.ids,
    session = sess.sid, owner = sess.owner, start = sess.start, ['end'] = now,
    cause = cause, policy_version = sess.pv, currency = acct.currency or '',
    charged = total, net = net, tax = tax, tax_rate_ppm = ppm, shortfall = short,
    services = services}
  redis.call('XADD', stream, '*', 'r', cmsgpack.pack(rec))
end

local function hash_to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The account a request charges, checked against what the caller resolved
-- from its cache (identity -> account, plan): if either moved since, answer
-- `stale` and the caller re-resolves (the authoritative data is here).
-- Returns the account table, or nil and the error reply.
local function load_account(req, acct_key, ids_key)
  -- Only these fields are read (HMGET converts 3 values where HGETALL
  -- converts every field and name); a missing one is nil, as before.
  local f = redis.call('HMGET', acct_key, 'status', 'plan', 'currency')
  local acct = {status = f[1] or nil, plan = f[2] or nil, currency = f[3] or nil}
  if not acct.status or acct.status == 'deleted' then return nil, {e = 'user_unknown'} end
  if req.ik and req.ik ~= '' and redis.call('SISMEMBER', ids_key, req.ik) == 0 then
    return nil, {e = 'stale'}
  end
  if req.plan ~= (acct.plan or '') then return nil, {e = 'stale', plan = acct.plan} end
  return acct, nil
end

local function load_balance(key)
  local bal = unpack_blob(redis.call('GET', key))
  if not bal then bal = {b = {}} end
  if not bal.b then bal.b = {} end
  return bal
end

local function save_balance(key, bal, now)
  prune(bal, now)
  redis.call('SET', key, cmsgpack.pack(bal))
end

-- Answers live beside the session, not in it: a replay reads one hash field
-- and the session blob stays small (unpacking grows with its size). The
-- newest 256 request keys are kept; the order list says which to forget.
local ANSWERS_KEPT = 256

local function remember(answers_key, order_key, rk, packed)
  if redis.call('HSET', answers_key, rk, packed) == 1 then
    if redis.call('RPUSH', order_key, rk) > ANSWERS_KEPT then
      redis.call('HDEL', answers_key, redis.call('LPOP', order_key))
    end
  end
end

-- Close a session: kept a day with its answers so repeats are replayed,
-- and out of the account's open-session set.
local function close_session(sess, now, sess_key, answers_key, order_key, open_set)
  sess.st = 'closed'
  sess.last = now
  redis.call('SET', sess_key, cmsgpack.pack(sess), 'EX', 86400)
  redis.call('EXPIRE', answers_key, 86400)
  redis.call('EXPIRE', order_key, 86400)
  redis.call('SREM', open_set, sess.sid)
end

local function publish(stream, kind, acct_id, sid, owner, attrs, rgs)
  local msg = cmsgpack.pack({k = kind, a = acct_id, s = sid, o = owner, at = attrs, rg = rgs or {}})
  redis.call('XADD', stream, 'MAXLEN', '~', '10000', '*', 'n', msg)
end

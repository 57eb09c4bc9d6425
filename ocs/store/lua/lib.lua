-- lib.lua: helpers shared by every balance script (prepended at load time).
--
-- Integers only: Lua 5.1 numbers are doubles, exact to 2^53; the Python side
-- saturates every quantity at MAX before calling, and math.floor is applied to
-- every division.
--
-- Stored state: ocs/store/layout.py has the picture. In short, an account
-- hash holds its buckets' fixed description `m` (msgpack, consumption
-- order, each with a handle that never changes) and their amounts `b`
-- (msgpack list: amount, reserved per bucket, in `m`'s order); a session
-- hash holds its hot state `h` (one msgpack list: times, each service's
-- state), its answers in a window of ANSWER_WINDOW slots `a0`..`a15`, and
-- cold fields written when they change. A CCR-U reads five account fields
-- and five session fields and writes `b`, `h` and one answer.
--
-- Why so few tables and strings: inside the server every Lua table costs
-- about 2,000 instructions (allocation and collection), tonumber() of a
-- reply about 1,800, a redis.call about 5,000 plus its fields (measured with
-- callgrind, loadtest/luabench.py); so amounts are a flat list indexed by
-- bucket position, tariffs are read in place from the request list, and the
-- fixed description of buckets is parsed once per distinct `m` and kept.

local MAX = 9007199254740991  -- 2^53 - 1, the largest exact integer

-- Globals, bound to locals by bind() at the start of every call. Inside a
-- function library every global read goes through the sandbox's lookup
-- (about 300 instructions, callgrind), and the library's load step may not
-- read them at all; a local costs one VM instruction.
local floor, call, mp_pack, mp_unpack, lnext, tunpack, sort, sub = nil, nil, nil, nil, nil, nil, nil, nil
local find, byte, tostr, tonum = nil, nil, nil, nil
local function bind()
  if floor then return end
  floor, call, mp_pack, mp_unpack = math.floor, redis.call, cmsgpack.pack, cmsgpack.unpack
  lnext, tunpack, sort, sub = next, unpack, table.sort, string.sub
  find, byte, tostr, tonum = string.find, string.byte, tostring, tonumber
end

-- Units by code (the request and the stored state use the codes; records
-- and bucket descriptions the names).
local UNIT_NAMES = {'money', 'total_octets', 'input_octets', 'output_octets', 'seconds', 'events'}
local UNIT_CODES = {money = 1, total_octets = 2, input_octets = 3, output_octets = 4,
  seconds = 5, events = 6}  -- literal: a library's load step may not call ipairs
local MONEY = 1

local function sat_add(a, b)
  local s = a + b
  if s > MAX then return MAX end
  return s
end

-- A tariff is six integers at T[o..o+5]: first block units and price,
-- next blocks' units and price, rounding (0 per started block, 1 completed
-- blocks only, 2 nearest), free (1/0). Price of a cumulative quantity u of
-- money-rated units in one session. The block count is computed inline:
-- cost() runs several times per service of every request, and a Lua call
-- costs more than the division.
local function cost(T, o, u)
  if u <= 0 or T[o + 5] == 1 then return 0 end
  local c, rest = T[o + 1], u - T[o]
  if rest > 0 then
    -- Whole blocks by x - x % b (exact below 2^53, as floor(x / b)): the
    -- modulo is one VM instruction where math.floor is a C call.
    local bu, r, n = T[o + 2], T[o + 4], nil
    if r == 1 then
      n = (rest - rest % bu) / bu
    elseif r == 2 then
      local x, d = 2 * rest + bu, 2 * bu
      n = (x - x % d) / d
    else
      local x = rest + bu - 1
      n = (x - x % bu) / bu
    end
    local bp = T[o + 3]
    if bp > 0 and n > (MAX - c) / bp then return MAX end
    c = c + n * bp
  end
  return c
end

-- Largest g <= want with cost(c0 + g) - cost(c0) <= money (binary search; the
-- cost is a monotone step function, so this holds for every tariff shape),
-- and that price (the caller takes it from the balance).
local function grantable(T, o, c0, want, money)
  if T[o + 5] == 1 then return want, 0 end
  local base = cost(T, o, c0)
  local price = cost(T, o, c0 + want) - base
  if price <= money then return want, price end
  local lo, hi, lo_price = 0, want, 0
  while lo < hi do
    -- Not (lo + hi + 1) / 2: above 2^53 that sum rounds, mid can equal lo
    -- and the loop never ends (a busy server) once lo passes 2^52.
    local x = hi - lo + 1
    local mid = lo + (x - x % 2) / 2
    local p = cost(T, o, c0 + mid) - base
    if p <= money then lo, lo_price = mid, p else hi = mid - 1 end
  end
  return lo, lo_price
end

-- cost() of a service's own total, remembered for the next question at the
-- same point (a debit's new total is the next grant's base).
local function cost_at(sv, T, o, u)
  if sv.c_o == o and sv.c_u == u then return sv.c end
  local c = cost(T, o, u)
  sv.c_o, sv.c_u, sv.c = o, u, c
  return c
end

local function affordable(T, o, c0, want, money)
  local g = grantable(T, o, c0, want, money)
  return g
end

-- -- Buckets ------------------------------------------------------------------
-- The description `m`: msgpack list of {id, unit, expiry (0: never),
-- priority, floor, services, handle}; services a flat list of (rating group,
-- service id) pairs, -1 for "any", empty for every service. Parsed into
-- columns (M.id[i], M.unit[i] as a code, ...), with M.at[handle] = i and the
-- chains of each (unit, rating group, service id) made on first use. One
-- parse per distinct `m` (most accounts share a few), kept for later calls:
-- it is never changed, only replaced.

local METAS, NMETAS = {}, 0

local function applies(svc, rg, sid)
  local n = #svc
  if n == 0 then return true end
  for i = 1, n, 2 do
    local brg, bsid = svc[i], svc[i + 1]
    if (brg == -1 or brg == rg) and (bsid == -1 or bsid == sid) then return true end
  end
  return false
end

local function meta_of(raw)
  local M = METAS[raw]
  if M then return M end
  local d = mp_unpack(raw)
  M = {n = #d, id = {}, unit = {}, exp = {}, pri = {}, floor = {}, svc = {}, h = {}, at = {},
    chains = {}}
  for i = 1, #d do
    local e = d[i]
    M.id[i], M.unit[i], M.exp[i], M.pri[i] = e[1], UNIT_CODES[e[2]], e[3], e[4]
    M.floor[i], M.svc[i], M.h[i] = e[5], e[6], e[7]
    M.at[e[7]] = i
  end
  if NMETAS >= 1000 then
    METAS, NMETAS = {}, 0  -- a bound, not an LRU: parsing again is cheap
  end
  METAS[raw] = M
  NMETAS = NMETAS + 1
  return M
end

-- Positions of the buckets of one unit for one service, in consumption
-- order (expiry is checked where they are used: it depends on the time).
local function chain(M, unit, rg, sid)
  local by_unit = M.chains[unit]
  if not by_unit then
    by_unit = {}
    M.chains[unit] = by_unit
  end
  local by_rg = by_unit[rg]
  if not by_rg then
    by_rg = {}
    by_unit[rg] = by_rg
  end
  local c = by_rg[sid]
  if c then return c end
  c = {}
  for i = 1, M.n do
    if M.unit[i] == unit and applies(M.svc[i], rg, sid) then c[#c + 1] = i end
  end
  by_rg[sid] = c
  return c
end

-- A balance: {M, B (amount, reserved of bucket i at B[2i-1], B[2i]), now,
-- dirty, status, currency}. A bucket counts while its expiry (0: never) is
-- later than now.

local function sum_avail(bal, c)
  local B, fl, exp, now, s = bal.B, bal.M.floor, bal.M.exp, bal.now, 0
  for j = 1, #c do
    local i = c[j]
    local e = exp[i]
    if e == 0 or e > now then
      local a = B[2 * i - 1] - B[2 * i] - fl[i]
      if a > 0 then
        s = s + a
        if s > MAX then s = MAX end
      end
    end
  end
  return s
end

-- Take up to n from the chain's available amounts (reserve them, or debit
-- them); returns what was taken, and adds it to into[key[i]] if given.
local function take(bal, c, n, reserve, into, key)
  local B, fl, exp, now, got = bal.B, bal.M.floor, bal.M.exp, bal.now, 0
  for j = 1, #c do
    if got >= n then break end
    local i = c[j]
    local e = exp[i]
    if e == 0 or e > now then
      local a = B[2 * i - 1] - B[2 * i] - fl[i]
      if a > n - got then a = n - got end
      if a > 0 then
        if reserve then B[2 * i] = B[2 * i] + a else B[2 * i - 1] = B[2 * i - 1] - a end
        bal.dirty = true
        if into then
          local k = key[i]
          into[k] = (into[k] or 0) + a
        end
        got = got + a
      end
    end
  end
  return got
end

-- Give back what `res` (bucket handle -> units, or nil) holds reserved.
local function release(bal, res)
  if not res then return end
  local B, at = bal.B, bal.M.at
  for h, a in lnext, res do
    local i = at[h]
    if i then
      local r = B[2 * i] - a
      if r < 0 then r = 0 end
      B[2 * i] = r
      bal.dirty = true
    end
  end
end

-- Money available to the account (all money buckets, any service).
local function money_available(bal)
  local M, B, now, total = bal.M, bal.B, bal.now, 0
  local unit, exp, fl = M.unit, M.exp, M.floor
  for i = 1, M.n do
    local e = exp[i]
    if unit[i] == MONEY and (e == 0 or e > now) then
      local a = B[2 * i - 1] - B[2 * i] - fl[i]
      if a > 0 then total = total + a end
    end
  end
  return total
end

-- The account a request charges, checked against what the caller resolved
-- from its cache (identity -> account, plan): if either moved since, answer
-- `stale` and the caller re-resolves (the authoritative data is here). An
-- account stored by an older ocs (no `m`) is refused: `ocs store migrate`.
-- Returns status, currency and the balance, or nil and an error code.
local function load_account(key, ids_key, ik, plan, now)
  local f = call('HMGET', key, 'status', 'plan', 'currency', 'm', 'b')
  local status = f[1]
  if not status or status == 'deleted' then return nil, 'user_unknown' end
  if not f[4] then return nil, 'migrate' end
  if ik ~= '' and call('SISMEMBER', ids_key, ik) == 0 then return nil, 'stale' end
  if plan ~= (f[2] or '') then return nil, 'stale' end
  return {status = status, currency = f[3] or '', M = meta_of(f[4]), B = mp_unpack(f[5]),
    now = now, dirty = false}
end

-- The buckets as editable tables (administration scripts, pruning).
local function bucket_list(bal)
  local M, B, out = bal.M, bal.B, {}
  for i = 1, M.n do
    out[i] = {id = M.id[i], unit = UNIT_NAMES[M.unit[i]], exp = M.exp[i], pri = M.pri[i],
      floor = M.floor[i], svc = M.svc[i], h = M.h[i], amt = B[2 * i - 1], res = B[2 * i]}
  end
  return out
end

-- Consumption order: priority, then earliest expiry (never-expiring last),
-- then id. `m` is kept in this order, so no request sorts.
local function consumed_first(x, y)
  if x.pri ~= y.pri then return x.pri < y.pri end
  local ex = x.exp == 0 and MAX or x.exp
  local ey = y.exp == 0 and MAX or y.exp
  if ex ~= ey then return ex < ey end
  return x.id < y.id
end

-- Store a bucket list as `m` and `b`: sorted, new buckets given a handle,
-- and without buckets spent to zero or expired with nothing reserved (money
-- buckets without expiry stay: they carry the floor), so the description
-- stays small; `now` nil keeps every bucket (a new account). Returns the
-- buckets kept.
local function store_buckets(key, all, now)
  local top, list = 0, {}
  for _, b in ipairs(all) do
    if b.h and b.h > top then top = b.h end
    local gone = now and b.res <= 0 and
      ((b.amt <= 0 and b.unit ~= 'money') or (b.exp ~= 0 and b.exp <= now))
    if not gone then list[#list + 1] = b end
  end
  sort(list, consumed_first)
  local m, B = {}, {}
  for i, b in ipairs(list) do
    if not b.h then
      top = top + 1
      b.h = top
    end
    m[i] = {b.id, b.unit, b.exp, b.pri, b.floor, b.svc, b.h}
    B[2 * i - 1] = b.amt
    B[2 * i] = b.res
  end
  call('HSET', key, 'm', mp_pack(m), 'b', mp_pack(B))
  return list
end

-- A bucket store_buckets would drop.
local function dead(bal, i)
  local M, B = bal.M, bal.B
  if B[2 * i] > 0 then return false end
  local e = M.exp[i]
  return (B[2 * i - 1] <= 0 and M.unit[i] ~= MONEY) or (e ~= 0 and e <= bal.now)
end

-- Write the amounts if they changed: one field, or the description too
-- when a bucket died.
local function save_balance(key, bal)
  for i = 1, bal.M.n do
    if dead(bal, i) then
      store_buckets(key, bucket_list(bal), bal.now)
      return
    end
  end
  if bal.dirty then call('HSET', key, 'b', mp_pack(bal.B)) end
end

-- -- One service of a session ----------------------------------------------------
-- sv: {k, mu (money-rated units so far: blocks are priced on the total), ch
-- (charged), sf (shortfall), res (bucket handle -> reserved, or nil), [unit code] =
-- units used, cum (unit code -> last cumulative counter, or nil), fb (bucket
-- id -> units taken, or nil)}. In `h`: k, mu, ch, sf, then res, used, cum and
-- fb each as a count and its pairs.

local function new_service(k)
  return {k = k, mu = 0, ch = 0, sf = 0}
end

-- Decode the services of `h` whose count is at position i; returns them by key.
-- The pairs at H[i] (a count, then key / value pairs) into `into` (a new
-- table if nil; nil when there are none); returns it and the next position.
local function get_pairs(H, i, into)
  local c = H[i]
  i = i + 1
  if c == 0 then return into, i end
  into = into or {}
  for _ = 1, c do
    into[H[i]] = H[i + 1]
    i = i + 2
  end
  return into, i
end

local function decode_services(H, i)
  local by_key = {}
  local n = H[i]
  i = i + 1
  for _ = 1, n do
    local sv = {k = H[i], mu = H[i + 1], ch = H[i + 2], sf = H[i + 3]}
    sv.res, i = get_pairs(H, i + 4, nil)
    local _used  -- the units used go in the service itself, by unit code
    _used, i = get_pairs(H, i, sv)
    sv.cum, i = get_pairs(H, i, nil)
    sv.fb, i = get_pairs(H, i, nil)
    by_key[sv.k] = sv
  end
  return by_key
end

local function put_pairs(H, n, m)
  local at, c = n + 1, 0
  n = n + 1
  if m then
    for k, v in lnext, m do
      if v ~= 0 then
        H[n + 1] = k
        H[n + 2] = v
        n = n + 2
        c = c + 1
      end
    end
  end
  H[at] = c
  return n
end

-- Append the services to H (after position n); returns the new end.
local function encode_services(H, n, by_key)
  local count_at, count = n + 1, 0
  n = n + 1
  for k, sv in lnext, by_key do
    H[n + 1], H[n + 2], H[n + 3], H[n + 4] = k, sv.mu, sv.ch, sv.sf
    n = put_pairs(H, n + 4, sv.res)
    local c_at, c = n + 1, 0
    n = n + 1
    for code = 1, 6 do
      local v = sv[code]
      if v and v ~= 0 then
        H[n + 1] = code
        H[n + 2] = v
        n = n + 2
        c = c + 1
      end
    end
    H[c_at] = c
    n = put_pairs(H, n, sv.cum)
    n = put_pairs(H, n, sv.fb)
    count = count + 1
  end
  H[count_at] = count
  return n
end

-- The services' usage as unit name -> units (for the record).
local function used_of(sv)
  local used = {}
  for code = 1, 6 do
    local v = sv[code]
    if v and v ~= 0 then used[UNIT_NAMES[code]] = v end
  end
  return used
end

-- Reserve for service state sv: `want` units of its rated unit from its
-- unit chain first, then money through the tariff at T[o]. Returns granted
-- units, final flag.
local function reserve(bal, sv, want, T, o, units, money)
  if want <= 0 then return 0, false end
  local res = {}
  sv.res = res
  if T[o + 5] == 1 then return want, false end
  local h = bal.M.h
  local got = 0
  if #units > 0 then got = take(bal, units, want, true, res, h) end
  if got < want then
    local mu, avail, rest = sv.mu, sum_avail(bal, money), want - got
    local base = cost_at(sv, T, o, mu)
    local price = cost(T, o, mu + rest) - base
    local g = rest
    if price > avail then g, price = grantable(T, o, mu, rest, avail) end
    take(bal, money, price, true, res, h)
    got = got + g
  end
  return got, got < want
end

-- Charge `u` rated units just used: unit buckets, then money through the
-- tariff at T[o]; what the balance cannot cover (down to each bucket's
-- floor) is a shortfall.
local function debit(bal, sv, u, T, o, units, money)
  if u <= 0 then return 0, 0 end
  local taken = 0
  if #units > 0 then
    local fb = sv.fb or {}
    sv.fb = fb
    taken = take(bal, units, u, false, fb, bal.M.id)
  end
  local rest = u - taken
  if rest <= 0 or T[o + 5] == 1 then return 0, 0 end
  local mu = sv.mu
  local m = -cost_at(sv, T, o, mu)
  mu = sat_add(mu, rest)
  m = m + cost_at(sv, T, o, mu)
  sv.mu = mu
  local paid = take(bal, money, m, false)
  return paid, m - paid
end

-- Split u units over tariff segments (start, tariff position) in
-- proportion to each segment's share of [last, now]; the last overlapping
-- segment takes the rounding remainder so nothing is lost.
local function split_by_time(u, segs, last, now)
  local span = now - last
  local nseg = #segs / 2
  if span <= 0 then return {u, segs[2 * nseg]} end
  local parts, given = {}, 0
  for g = 1, nseg do
    local s0 = math.max(segs[2 * g - 1], last)
    local s1 = now
    if g < nseg then s1 = math.min(segs[2 * g + 1], now) end
    if s1 > s0 then
      parts[#parts + 1] = s1 - s0
      parts[#parts + 1] = segs[2 * g]
    end
  end
  if #parts == 0 then return {u, segs[2 * nseg]} end
  local out = {}
  for p = 1, #parts, 2 do
    local n = floor(u * parts[p] / span)
    if p == #parts - 1 then n = u - given end
    given = given + n
    out[#out + 1] = n
    out[#out + 1] = parts[p + 1]
  end
  return out
end

-- The services of a session request, read in place from the request list
-- A whose count is at position i: the position of each one's fields, and
-- the position after them. Fields of a service at position o: key, name,
-- rating group, service id, rated unit (code), want, tariff (6, at o + 6),
-- share percent (-1: none), minimum grant, report count, then its reports:
-- cumulative, unit count, unit code / value pairs, tariff kind (0 the
-- service's, 1 its own: 6 follow, 2 segments: count, then start and 6 each).
local function report_end(A, i)
  i = i + 2 + 2 * A[i + 1]
  local kind = A[i]
  if kind == 1 then return i + 7 end
  if kind == 2 then return i + 2 + 7 * A[i + 1] end
  return i + 1
end

local function services_of(A, i)
  local at = {}
  local n = A[i]
  i = i + 1
  for s = 1, n do
    at[s] = i
    local nrep = A[i + 14]
    i = i + 15
    for _ = 1, nrep do i = report_end(A, i) end
  end
  return at, i
end

-- A cumulative report none of whose counters went up while one went down
-- is an older record than the last one counted: a RADIUS Interim re-sent
-- or delayed past newer ones (its answer no longer kept). It charges
-- nothing and leaves the counters as they are. A real restart of the
-- counters comes with time going on (Acct-Session-Time up) or some other
-- counter up (a 32-bit octet counter wrapping without Gigawords), and
-- starts a new epoch below (standards §3.4); a NAS that reboots closes
-- its sessions with Accounting-On first.
local function stale(A, i, cum)
  if not cum then return false end
  local lower = false
  for p = i + 2, i + 1 + 2 * A[i + 1], 2 do
    local prev, v = cum[A[p]] or 0, A[p + 1]
    if v > prev then return false end
    if v < prev then lower = true end
  end
  return lower
end

-- Charge one usage report at A[i] (with its own tariff: before/after a
-- tariff switch). Cumulative reports (RADIUS) are turned into deltas here:
-- a total below the last starts a new epoch and is charged from zero.
local function apply_report(A, o, i, bal, sv, last, units, money)
  local ru = A[o + 4]
  local cumulative = A[i] == 1
  local u = 0
  for p = i + 2, i + 1 + 2 * A[i + 1], 2 do
    local code, v = A[p], A[p + 1]
    local d = v
    if cumulative then
      local cum = sv.cum or {}
      sv.cum = cum
      local prev = cum[code] or 0
      if v >= prev then d = v - prev end
      cum[code] = v
    end
    if code == ru then u = d end
    local total = (sv[code] or 0) + d
    if total > MAX then total = MAX end
    sv[code] = total
  end
  local t = i + 2 + 2 * A[i + 1]
  local kind = A[t]
  if kind ~= 2 then
    return debit(bal, sv, u, A, kind == 1 and t + 1 or o + 6, units, money)
  end
  -- No Tariff-Change-Usage but the interval since the last report spans
  -- tariff switches: split the usage in proportion to the time spent
  -- under each tariff (policies/README.md, "Tariff switches").
  local segs = {}
  for g = 1, A[t + 1] do
    local at = t + 2 + 7 * (g - 1)
    segs[2 * g - 1] = A[at]
    segs[2 * g] = at + 1
  end
  local parts = split_by_time(u, segs, last, bal.now)
  local charged, short = 0, 0
  for p = 1, #parts, 2 do
    local c, s = debit(bal, sv, parts[p], A, parts[p + 1], units, money)
    charged = charged + c
    short = short + s
  end
  return charged, short
end

-- Apply one service's usage reports (each with its own tariff).
local function apply_reports(A, o, bal, sv, last, units, money)
  local charged, short = 0, 0
  local i = o + 15
  for _ = 1, A[o + 14] do
    if not (A[i] == 1 and stale(A, i, sv.cum)) then
      local c, s = apply_report(A, o, i, bal, sv, last, units, money)
      charged = charged + c
      short = short + s
    end
    i = report_end(A, i)
  end
  sv.ch = sv.ch + charged
  sv.sf = sv.sf + short
  return charged, short
end

-- Dynamic grant sizing: a share of what the balance can pay for this
-- service, at least `min` (when the balance pays that much), never more
-- than asked. A low balance gets smaller grants, so reports come sooner.
local function share(aff, pct)
  return floor(aff / 100) * pct + floor((aff % 100) * pct / 100)
end

-- share() is monotone in the amount, so once the share of `cap` covers
-- `want`, any affordable amount beyond `cap` gives the same grant: the
-- search stops there instead of bisecting up to MAX (about 53 steps of two
-- cost() calls whenever the balance covers more than the grant).
local function share_cap(want, pct)
  if pct <= 0 then return MAX end
  local cap = 100 * (floor(want / pct) + 1)
  if cap < MAX and share(cap, pct) >= want then return cap end
  return MAX
end

local function dynamic_want(bal, sv, want, T, o, pct, min, units, money)
  local cap = share_cap(want, pct)
  local aff = sum_avail(bal, units)
  if aff < cap then
    aff = aff + affordable(T, o, sv.mu, cap - aff, sum_avail(bal, money))
  else
    aff = cap
  end
  local target = share(aff, pct)
  if min > 0 and target < min then target = min end
  if target < want then return target end
  return want
end

-- Low-balance and exhaustion events for integrations (notifications stream
-- only: they are not pushes to the gateways).
local function balance_events(stream, sid, owner, attrs, acct_id, before, after, thresholds, limited)
  for j = 1, #thresholds do
    local thr = thresholds[j]
    if before >= thr and after < thr then
      call('XADD', stream, 'MAXLEN', '~', '10000', '*', 'n', mp_pack({k = 'low_balance',
        a = acct_id, s = sid, o = owner, at = attrs, bal = after, thr = thr}))
    end
  end
  if limited or (before > 0 and after <= 0) then
    call('XADD', stream, 'MAXLEN', '~', '10000', '*', 'n', mp_pack({k = 'exhausted',
      a = acct_id, s = sid, o = owner, at = attrs, bal = after}))
  end
end

local GRANTED, LIMIT, DENIED = 0, 1, 2

-- Serve each service of a request: usage first, then the new reservation.
-- `deny` grants nothing (blocked account) but still debits the usage
-- (RFC 4006 §5.6.3 / standards §2.8: debit any USU on 4010). Appends to
-- `out` key, status, granted, final, charged, shortfall per service; returns
-- whether a grant was refused for want of credit.
local function serve(A, bal, svcs, by_key, last, deny, grant, out)
  local n, limited, M = #out, false, bal.M
  for s = 1, #svcs do
    local o = svcs[s]
    local k, rg, sid, ru = A[o], A[o + 2], A[o + 3], A[o + 4]
    local sv = by_key[k]
    release(bal, sv.res)
    sv.res = nil
    local units = chain(M, ru, rg, sid)
    local money = chain(M, MONEY, rg, sid)
    local ch, sf = 0, 0
    if A[o + 14] > 0 then ch, sf = apply_reports(A, o, bal, sv, last, units, money) end
    local st, g, fin = GRANTED, 0, 0
    local want = A[o + 5]
    if deny then
      st = DENIED
    elseif grant and want >= 0 then
      local pct = A[o + 12]
      if pct >= 0 and want > 0 then
        want = dynamic_want(bal, sv, want, A, o + 6, pct, A[o + 13], units, money)
      end
      local final
      g, final = reserve(bal, sv, want, A, o + 6, units, money)
      if final then fin = 1 end
      if A[o + 5] > 0 and g == 0 then
        st = LIMIT
        limited = true
      end
    end
    out[n + 1], out[n + 2], out[n + 3] = k, st, g
    out[n + 4], out[n + 5], out[n + 6] = fin, ch, sf
    n = n + 6
  end
  return limited
end

-- Gross -> net + tax at rate ppm, net rounded half up, computed without ever
-- multiplying the whole gross by 10^6 (exact for every gross below 2^53).
local function split_tax(gross, ppm)
  if ppm <= 0 then return gross, 0 end
  local d = 1000000 + ppm
  local q = floor(gross / d)
  local rem = gross - q * d
  local net = q * 1000000 + floor((rem * 1000000 + floor(d / 2)) / d)
  return net, gross - net
end

-- The charged-session record (ocs/charging/records.py, version 2: short
-- keys and positional services, half the bytes of version 1 in the stream
-- and the AOF), appended in the same call as the debit so neither exists
-- without the other. `services` holds {service, name, rating_group,
-- service_id, used (unit -> units), charged, shortfall, from_buckets};
-- `s` the session's {ids, owner, start, pv}. The record id is not written:
-- it is the account and session (events: "ev/" before them).
local function flat_pairs(m, code_of)
  local out = {}
  for k, v in lnext, m do
    out[#out + 1] = code_of and code_of[k] or k
    out[#out + 1] = v
  end
  return out
end

local function write_record(stream, services, s, acct_id, sid, currency, now, cause, kind, ppm)
  local total, short = 0, 0
  for _, r in ipairs(services) do
    total = total + r.charged
    short = short + r.shortfall
  end
  sort(services, function(a, b) return a.service < b.service end)
  local sv = {}
  for i, r in ipairs(services) do
    sv[i] = {r.service, r.name, r.rating_group or -1, r.service_id or -1,
      flat_pairs(r.used, UNIT_CODES), r.charged, r.shortfall, flat_pairs(r.from_buckets)}
  end
  local net, tax = split_tax(total, ppm)
  local rec = {v = 2, k = kind, a = acct_id, i = s.ids, s = sid, o = s.owner, t0 = s.start,
    t1 = now, c = cause, p = s.pv, cu = currency or '', ch = total, n = net, x = tax, r = ppm,
    sf = short, sv = sv}
  call('XADD', stream, '*', 'r', mp_pack(rec))
end

local function hash_to_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The hot state `h` of a session: {last, deadline, answers so far,
-- services}; nil for none.
local HOT_SERVICES = 4  -- where the services start in `h`

local function decode_hot(raw)
  if not raw then return nil, nil end
  local H = mp_unpack(raw)
  return H, decode_services(H, HOT_SERVICES)
end

-- -- Answers kept for repeats (ocs/store/layout.py, "Answers") ----------------
-- A session keeps each answer in field `a<slot>` as "<request key>\n<answer>".
-- A numbered request key (Gy CC-Request-Number, Nchf invocation sequence
-- number; the caller sends it as an integer) N has slot N mod ANSWER_WINDOW,
-- so the last ANSWER_WINDOW numbers are replayed, and a slot only ever
-- takes a higher number than it holds: a number below the one in its slot
-- is too old to replay, and is refused. Any other key (RADIUS: a digest)
-- has the slot of a hash of its text: a repeat is replayed while no other
-- key took that slot since (RADIUS relies on its counters beyond that).
local ANSWER_WINDOW = 16

local function answer_field(rk)
  if type(rk) == 'number' then return 'a' .. rk % ANSWER_WINDOW end
  local h = 0
  for i = 1, #rk do h = (h * 31 + byte(rk, i)) % 65521 end
  return 'a' .. h % ANSWER_WINDOW
end

-- What the stored value `v` of a request's slot says: 'R' .. the answer (a
-- repeat: nothing changes), 'Etoo_old' (a number below the one holding the
-- slot: it may have been answered, and that answer is gone), or nil (new).
local function kept_answer(v, rk)
  if not v then return nil end
  local p = find(v, '\n', 1, true)
  if not p then return nil end
  local key = sub(v, 1, p - 1)
  if type(rk) == 'number' then
    local held = tonum(key)
    if held == rk then return 'R' .. sub(v, p + 1) end
    if held and held > rk then return 'Etoo_old' end
    return nil
  end
  if key == rk then return 'R' .. sub(v, p + 1) end
  return nil
end

local function keep_answer(rk, answer)
  return tostr(rk) .. '\n' .. answer
end

-- A closing session: its fields (state, owner, attributes, identities,
-- start, policy version, the names of its services), its hot state, its
-- services by key, and the value of the answer slot `afield` if given.
-- Not HGETALL: a session keeps up to ANSWER_WINDOW answers, and reading
-- them all cost a long session's CCR-T about 15 us (luabench, 200 prior).
local function read_closing(key, afield)
  local v = call('HMGET', key, 'st', 'h', 'o', 'at', 'ids', 'start', 'pv', afield or 'st')
  local f = {st = v[1], h = v[2], o = v[3], at = v[4], ids = v[5], start = v[6], pv = v[7]}
  local H, by_key = decode_hot(f.h)
  by_key = by_key or {}
  local names, n = {'HMGET', key}, 2
  for k in lnext, by_key do
    n = n + 1
    names[n] = 'n:' .. k
  end
  if n > 2 then
    local got = call(tunpack(names))
    for j = 3, n do f[names[j]] = got[j - 2] end
  end
  return f, H, by_key, afield and v[8] or nil
end

-- The session's cold fields as the record and the pushes want them.
local function session_view(f)
  return {ids = f.ids and mp_unpack(f.ids) or {}, owner = f.o or '',
    start = tonumber(f.start) or 0, pv = f.pv or ''}
end

-- Release every reservation of a closing session and make its record's
-- services (names and ids from `n:<key>`, or from `statics` for a service
-- new in this request).
local function close_services(bal, f, by_key, statics)
  local out = {}
  for k, sv in lnext, by_key do
    release(bal, sv.res)
    sv.res = nil
    local static = statics and statics[k]
    if not static then static = f['n:' .. k] and mp_unpack(f['n:' .. k]) or {} end
    out[#out + 1] = {service = k, name = static.nm or '', rating_group = static.rg,
      service_id = static.sid, used = used_of(sv), charged = sv.ch, shortfall = sv.sf,
      from_buckets = sv.fb or {}}
  end
  return out
end

-- Close a session: kept a day with its answers so repeats are replayed,
-- and out of the account's open-session set.
local CLOSED_KEPT = 86400

local function mark_closed(key, open_set, sid, extra)
  local args = {'HSET', key, 'st', 'closed'}
  for i = 1, #extra do args[#args + 1] = extra[i] end
  call(tunpack(args))
  call('EXPIRE', key, CLOSED_KEPT)
  call('SREM', open_set, sid)
end

local function publish(stream, kind, acct_id, sid, owner, attrs, rgs)
  local msg = mp_pack({k = kind, a = acct_id, s = sid, o = owner, at = attrs, rg = rgs or {}})
  call('XADD', stream, 'MAXLEN', '~', '10000', '*', 'n', msg)
end

-- Pushes for every open session of an account (credit, status). Returns
-- how many were told, and how many sessions the set held.
local function publish_sessions(open_set, base, stream, kind, acct_id, rgs)
  local sessions = call('SMEMBERS', open_set)
  local n = 0
  for _, sid in ipairs(sessions) do
    local f = call('HMGET', base .. ':s:' .. sid, 'st', 'o', 'at')
    if f[1] == 'open' then
      publish(stream, kind, acct_id, sid, f[2] or '', f[3] and mp_unpack(f[3]) or {}, rgs)
      n = n + 1
    end
  end
  return n, #sessions
end

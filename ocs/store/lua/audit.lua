-- audit.lua: helpers of the account administration scripts (create, credit,
-- status, plan, identity, expire, kick, renew), prepended after lib.lua.
--
-- Every operator change appends one audit entry to its partition's audit
-- stream (KEYS: the last key of each such script) in the same call as the
-- change, so neither exists without the other (ocs/audit.py decodes it).
-- An idempotency reference (the CLI's --ref, the API's Idempotency-Key)
-- makes a repeated call answer the first reply, marked `dup`, and change
-- nothing, not even the audit trail.

bind()

-- The account's fields and its buckets as an editable list (bucket_list);
-- nil, nil and the error reply when it is unknown, deleted or stored by an
-- older ocs (`ocs store migrate`).
local function admin_account(key, now)
  local h = hash_to_table(call('HGETALL', key))
  if not h.status or h.status == 'deleted' then return nil, nil, mp_pack({e = 'user_unknown'}) end
  if not h.m then return nil, nil, mp_pack({e = 'migrate'}) end
  return h, bucket_list({M = meta_of(h.m), B = mp_unpack(h.b), now = now}), nil
end

-- Money of the account in micro-units: every money bucket's amount, expired
-- or not (an account statement is the history of this number).
local function money_total(list)
  local t = 0
  for _, b in ipairs(list) do
    if b.unit == 'money' then t = t + b.amt end
  end
  return t
end

local function find_in(list, id)
  for _, b in ipairs(list) do
    if b.id == id then return b end
  end
  return nil
end

-- The first reply of a repeated reference, marked as a replay; nil if new.
local function replayed(ref, ref_key)
  if not ref or ref == '' then return nil end
  local prev = call('GET', ref_key)
  if not prev then return nil end
  local reply = mp_unpack(prev)
  reply.dup = 1
  return mp_pack(reply)
end

-- The opening of an administration script: its request, then either the
-- reply to give at once (the first reply of a repeated reference, or the
-- account's refusal) or the account and its bucket list.
local function admin_open(ref_key, account_key)
  local req = mp_unpack(ARGV[1])
  local dup = replayed(req.ref, ref_key)
  if dup then return req, dup end
  local acct, list, refused = admin_account(account_key, req.now)
  if not acct then return req, refused end
  return req, nil, acct, list
end

-- Keep the reply of a referenced call for a year; returns it.
local function remember_ref(ref, ref_key, packed)
  if ref and ref ~= '' then call('SET', ref_key, packed, 'EX', 31536000) end
  return packed
end

-- Append the audit entry `e` (op, acct and what changed) with who made the
-- change, how, why and when (req.au: who, via, rid, why; req.now).
local function audit(stream, req, e)
  local au = req.au or {}
  e.v = 1
  e.at = req.now
  e.who = au.who or ''
  e.via = au.via or ''
  e.rid = au.rid or ''
  e.why = au.why or ''
  e.ref = req.ref or ''
  call('XADD', stream, '*', 'a', mp_pack(e))
end

-- snapshot.lua: an account's booked money now, and where its partition's
-- streams end, read in one call so that nothing happens in between (the
-- account statement, ocs/statement.py, counts back from here).
-- KEYS: 1 account hash, 2 open-session set, 3 records stream, 4 audit
-- stream. Booked = the money buckets' amounts + what open sessions have been
-- charged so far (their charge is booked when they close).
local f = call('HMGET', KEYS[1], 'status', 'm', 'b', 'currency')
if not f[1] then return mp_pack({e = 'user_unknown'}) end  -- a deleted account has one too
if not f[2] then return mp_pack({e = 'migrate'}) end
local acct = {status = f[1], currency = f[4]}
local list = bucket_list({M = meta_of(f[2]), B = mp_unpack(f[3]), now = 0})
local money = money_total(list)
local pending, open = 0, 0
for _, sid in ipairs(call('SMEMBERS', KEYS[2])) do
  local sf = call('HMGET', KEYS[1] .. ':s:' .. sid, 'st', 'h')
  if sf[1] == 'open' then
    open = open + 1
    local _, by_key = decode_hot(sf[2])
    for _, sv in lnext, by_key or {} do pending = pending + (sv.ch or 0) end
  end
end
local function last(stream)
  local e = call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #e == 0 then return '0-0' end
  return e[1][1]
end
return mp_pack({cur = acct.currency or '', status = acct.status, money = money,
  pending = pending, open = open, rec = last(KEYS[3]), aud = last(KEYS[4])})

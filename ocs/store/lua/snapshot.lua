-- snapshot.lua: an account's booked money now, and where its partition's
-- streams end, read in one call so that nothing happens in between (the
-- account statement, ocs/statement.py, counts back from here).
-- KEYS: 1 account hash, 2 balance, 3 open-session set, 4 records stream,
-- 5 audit stream. Booked = the money buckets' amounts + what open sessions
-- have been charged so far (their charge is booked when they close).
local acct = hash_to_table(redis.call('HGETALL', KEYS[1]))
if not acct.status then return cmsgpack.pack({e = 'user_unknown'}) end
local money = money_total(load_balance(KEYS[2]))
local pending, open = 0, 0
for _, sid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local s = unpack_blob(redis.call('GET', KEYS[1] .. ':s:' .. sid))
  if s and s.st == 'open' then
    open = open + 1
    for _, sv in pairs(s.svc or {}) do pending = pending + (sv.ch or 0) end
  end
end
local function last(stream)
  local e = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #e == 0 then return '0-0' end
  return e[1][1]
end
return cmsgpack.pack({cur = acct.currency or '', status = acct.status, money = money,
  pending = pending, open = open, rec = last(KEYS[4]), aud = last(KEYS[5])})

-- Argo CD health check for shopfleet.io/ShopRegion (docs/argocd.md).
--
-- Argo CD runs it in gopher-lua, so it is plain Lua 5.1 without modules.
-- The live object is the global `obj`; the result is hs.status and
-- hs.message. The first rule that matches decides:
--
--   Degraded     Stalled is True for the current generation
--   Degraded     status.failover.refused is present (a needed failover is refused)
--   Progressing  no status yet
--   Progressing  status.observedGeneration differs from metadata.generation
--                (not compared when metadata.generation is missing)
--   Progressing  status.lastFailover has no completedAt (promotion under way)
--   Progressing  Ready is not True
--   Healthy      Ready is True

local hs = {}

-- tbl[key] when tbl is a table, nil otherwise.
local function field(tbl, key)
  if type(tbl) == "table" then
    return tbl[key]
  end
  return nil
end

-- A string for a message; "" for nil, tables and other non-text values.
local function text(value)
  if type(value) == "string" then
    return value
  end
  if type(value) == "number" or type(value) == "boolean" then
    return tostring(value)
  end
  return ""
end

-- A number from a number or a numeric string (generations may arrive as
-- floats or strings); nil otherwise.
local function number(value)
  if type(value) == "number" then
    return value
  end
  if type(value) == "string" then
    return tonumber(value)
  end
  return nil
end

-- "Reason: message", or whichever of the two is set, or nil.
local function explain(item)
  local reason = text(field(item, "reason"))
  local message = text(field(item, "message"))
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  if message ~= "" then
    return message
  end
  return nil
end

-- The condition of the given type, or nil.
local function condition(status, wanted)
  local conditions = field(status, "conditions")
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if field(c, "type") == wanted then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return text(field(c, "status")) == "True"
end

local function done(health, message)
  hs.status = health
  hs.message = message
end

local function assess()
  local status = field(obj, "status")

  -- Degraded: a human must act. A Stalled condition about an older
  -- generation is not: the fix is being reconciled (an Argo CD sync that
  -- just pushed it would otherwise fail on a Degraded it already cured).
  local generation = number(field(field(obj, "metadata"), "generation"))
  local stalled = condition(status, "Stalled")
  local stalled_generation = number(field(stalled, "observedGeneration"))
  local stalled_current = generation == nil or stalled_generation == nil or stalled_generation == generation
  if is_true(stalled) and stalled_current then
    return done("Degraded", explain(stalled) or "Stalled")
  end
  local refused = field(field(status, "failover"), "refused")
  if refused ~= nil and refused ~= false then
    local why = explain(refused)
    if why ~= nil then
      return done("Degraded", "failover refused: " .. why)
    end
    return done("Degraded", "failover refused")
  end

  -- Progressing: the operator is not done yet.
  if type(status) ~= "table" or next(status) == nil then
    return done("Progressing", "waiting for the operator")
  end
  local observed = number(field(status, "observedGeneration"))
  if generation ~= nil and observed ~= generation then
    return done("Progressing", "the operator has not yet observed generation " .. tostring(generation))
  end
  local last = field(status, "lastFailover")
  if type(last) == "table" and text(field(last, "completedAt")) == "" then
    local kind = "failover"
    local recorded = text(field(last, "kind"))
    if recorded == "Switchover" then
      kind = "switchover"
    elseif recorded == "CacheFollow" then
      kind = "cache primary move"
    end
    local target = text(field(last, "to"))
    if target ~= "" then
      return done("Progressing", kind .. " to " .. target .. " in progress")
    end
    return done("Progressing", kind .. " in progress")
  end
  local ready = condition(status, "Ready")
  if not is_true(ready) then
    local why = explain(ready) or explain(condition(status, "Reconciling"))
    if why ~= nil then
      return done("Progressing", why)
    end
    if ready ~= nil then
      local state = text(field(ready, "status"))
      if state == "" then
        state = "unset"
      end
      return done("Progressing", "Ready is " .. state)
    end
    return done("Progressing", "waiting for the operator to report Ready")
  end

  local message = text(field(ready, "message"))
  if message == "" then
    message = "Ready"
  end
  return done("Healthy", message)
end

assess()
return hs

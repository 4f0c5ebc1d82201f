-- Argo CD health of a launchgate.dev AgentRollout, read from the status the operator writes.
-- The same verdicts as kstatus (Flux), plus Suspended for a rollout that waits on people:
--   no status yet, or status.observedGeneration < metadata.generation   -> Progressing
--   Stalled=True (rolled back, auto-paused for missing data, progress
--   deadline exceeded, invalid spec), state Degraded or RollingBack      -> Degraded
--   state AwaitingApproval (waits for approvers), Paused (spec.paused)   -> Suspended
--   state Healthy with Ready=True                                        -> Healthy
--   anything else (a canary phase in progress)                           -> Progressing
-- Lua 5.1 (Argo CD runs gopher-lua); no library beyond the base functions.
local hs = {}
local st = obj.status
if st == nil or st.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the launchgate operator to report status"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and st.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation) ..
    " (observed " .. tostring(st.observedGeneration) .. ")"
  return hs
end

local conditions = {}
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type ~= nil then
      conditions[c.type] = c
    end
  end
end
local function isTrue(t)
  return conditions[t] ~= nil and conditions[t].status == "True"
end

local state = st.state or "Progressing"
local where = ""
if st.phase ~= nil then
  where = st.phase
  if st.canaryWeight ~= nil then
    where = where .. " (canary weight " .. tostring(st.canaryWeight) .. "%)"
  end
  where = where .. ": "
end
local message = st.message or ""

if isTrue("Stalled") or state == "Degraded" or state == "RollingBack" then
  hs.status = "Degraded"
  local c = conditions["Stalled"]
  local detail = message
  if c ~= nil and c.status == "True" and c.message ~= nil and c.message ~= "" then
    detail = c.message
  end
  local label = state
  if c ~= nil and c.status == "True" and c.reason ~= nil and c.reason ~= "" then
    label = c.reason
  elseif state == "RollingBack" then
    label = "Rolling back"
  end
  hs.message = label .. ": " .. where .. detail
  return hs
end

if state == "AwaitingApproval" then
  hs.status = "Suspended"
  local pa = st.pendingApproval
  if pa ~= nil then
    local approved = 0
    if pa.approvedBy ~= nil then
      approved = #pa.approvedBy
    end
    hs.message = "Awaiting approval: " .. tostring(pa.phase or st.phase or "?") .. " needs " ..
      tostring(pa.approversRequired or "?") .. " approver(s) from " .. tostring(pa.group or "?") ..
      ", " .. tostring(approved) .. " so far (request " .. tostring(pa.requestId or "?") .. ")"
  else
    hs.message = "Awaiting approval: " .. where .. message
  end
  return hs
end

if state == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused: " .. where .. message
  return hs
end

if state == "Healthy" and isTrue("Ready") then
  hs.status = "Healthy"
  hs.message = where .. message
  return hs
end

hs.status = "Progressing"
hs.message = state .. ": " .. where .. message
return hs

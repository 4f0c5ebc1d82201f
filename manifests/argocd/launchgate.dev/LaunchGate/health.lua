-- Argo CD health of a launchgate.dev LaunchGate: is the gate evaluating, and is it open?
--   spec the operator cannot evaluate (status.message "invalid spec: ...")  -> Degraded
--   not evaluated yet, or status.observedGeneration < metadata.generation   -> Progressing
--   decision allow with Ready=True (every blocker passes)                    -> Healthy
--   decision block or hold (the gate is closed)                              -> Suspended
--   idle: no active rollout uses it and its queries need one (status.message "idle: ...")
--                                                                            -> Suspended
-- A closed gate is a gate doing its job, not a broken resource: a gate with no canary to judge
-- is closed by design (its $canary is unbound, so its queries have no data), and a gate that
-- blocks a bad canary makes the AgentRollout using it hold and then roll back, which that
-- rollout's own health reports as Degraded. So a closed gate never turns the Application red;
-- the message (the operator's own) says block or hold, which blockers fail and how many pass.
-- Lua 5.1 (Argo CD runs gopher-lua); only base functions and the string library.
local hs = {}
local st = obj.status
if st ~= nil and type(st.message) == "string" and string.sub(st.message, 1, 13) == "invalid spec:" then
  hs.status = "Degraded"
  hs.message = st.message
  return hs
end
if st ~= nil and type(st.message) == "string" and string.sub(st.message, 1, 5) == "idle:" then
  hs.status = "Suspended"
  hs.message = st.message
  return hs
end
if st == nil or st.observedGeneration == nil or st.decision == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the first evaluation"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and st.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to evaluate generation " .. tostring(generation) ..
    " (evaluated " .. tostring(st.observedGeneration) .. ")"
  return hs
end

local ready = false
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type == "Ready" and c.status == "True" then
      ready = true
    end
  end
end

-- The operator's message already says the decision, which blockers fail and how many pass.
if st.message ~= nil and st.message ~= "" then
  hs.message = st.message
else
  hs.message = string.upper(st.decision) .. " (passing " .. tostring(st.passing or "?") .. ")"
end

if st.decision == "allow" and ready then
  hs.status = "Healthy"
elseif st.decision == "block" or st.decision == "hold" then
  hs.status = "Suspended"
else
  hs.status = "Progressing"
end
return hs

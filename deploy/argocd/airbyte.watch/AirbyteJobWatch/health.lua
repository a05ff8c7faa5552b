-- Health of an AirbyteJobWatch (airbyte.watch/v1alpha1). The resource follows kstatus:
-- status.observedGeneration, and the conditions Ready (always present once observed),
-- Reconciling (True while waiting) and Stalled (True when the watch failed or cannot proceed).
local hs = { status = "Progressing", message = "Waiting for the airbyte-watch operator" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local ready = nil
local stalled = nil
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Stalled" then
      stalled = condition
    end
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (ready ~= nil and ready.message) or stalled.message or stalled.reason
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
end
return hs

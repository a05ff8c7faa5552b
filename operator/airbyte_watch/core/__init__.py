"""The decision core: pure functions from (spec, status, Airbyte's answer, now) to
(status, Events, next step)."""

"""airbyte-watch: a Kubernetes operator that watches Airbyte jobs (AirbyteJobWatch resources)."""

GROUP = "airbyte.watch"
VERSION = "v1alpha1"
PLURAL = "airbytejobwatches"
KIND = "AirbyteJobWatch"

"""Kubernetes' side: the API client, status writes, the Lease election and the watch scopes."""

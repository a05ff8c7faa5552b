"""Airbyte's side: clients of its public and config APIs, their transport, and the list walks."""

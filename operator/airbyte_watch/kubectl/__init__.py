"""`kubectl airbyte`: the kubectl plugin that creates watches and waits on them."""

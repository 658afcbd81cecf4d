"""Kong node simulator (see tests/kongsim/README.md)."""

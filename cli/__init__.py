"""The `stanch` command."""

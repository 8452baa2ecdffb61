"""Every side effect stanch has: each activity does one thing and is safe to retry."""

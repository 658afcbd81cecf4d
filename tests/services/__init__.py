"""Real local services for tests: PostgreSQL, HAProxy and nginx from Debian's packages."""

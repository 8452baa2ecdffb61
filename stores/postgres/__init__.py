"""PostgreSQL stores, for a fleet of workers and gateways on many hosts
(STANCH_DATABASE_URL; stores/select.py chooses): the audit chain (audit.py),
the kill switch and log level with LISTEN/NOTIFY (toggles.py), page records
(pages.py) and postmortem drafts (postmortems.py), over one async connection
pool per process (database.py), in a schema versioned by migrations
(migrations.py, migrations/NNNN_*.sql; `stanch db upgrade`)."""

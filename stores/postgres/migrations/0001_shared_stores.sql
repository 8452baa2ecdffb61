-- The stores a fleet of workers and gateways shares (stores/postgres/).

-- The audit chain: one sequence, written under an advisory lock (audit.py).
-- `record` is the canonical JSON the hash covers, kept as text so the bytes
-- hashed are the bytes stored.
CREATE TABLE audit_records (
    seq        bigint PRIMARY KEY CHECK (seq > 0),
    key        text NOT NULL UNIQUE,
    record     text NOT NULL,
    prev_hash  text NOT NULL,
    hash       text NOT NULL,
    version    integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);

-- Signed checkpoints of the chain's head (stores/audit/checkpoints.py's rule).
CREATE TABLE audit_checkpoints (
    id         bigserial PRIMARY KEY,
    seq        bigint NOT NULL,
    hash       text NOT NULL,
    keyed_from bigint NOT NULL,
    at         text NOT NULL,
    key_id     text NOT NULL,
    mac        text NOT NULL
);

-- The kill switch and log level: one row, the toggle file's document.
CREATE TABLE toggles (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    doc        jsonb NOT NULL,
    version    bigint NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO toggles (id, doc, version) VALUES (true, '{}', 0);

-- A document that broke the schema, kept aside when an admin replaced it.
CREATE TABLE toggles_replaced (
    id          bigserial PRIMARY KEY,
    doc         jsonb NOT NULL,
    replaced_at timestamptz NOT NULL DEFAULT now()
);

-- Pages delivered to a file sink, once per key across the fleet.
CREATE TABLE page_records (
    sink     text NOT NULL,
    key      text NOT NULL,
    record   jsonb NOT NULL,
    paged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sink, key)
);

-- Postmortem drafts, one per incident, rewritten from the same facts.
CREATE TABLE postmortem_drafts (
    incident_id text PRIMARY KEY,
    markdown    text NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);

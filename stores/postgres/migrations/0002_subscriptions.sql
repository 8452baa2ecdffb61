-- Stakeholders' standing subscriptions to a service or a severity
-- (stores/subscriptions.py); deliveries of status updates use page_records
-- (sink 'status-updates'), one row per update and subscriber.
CREATE TABLE subscriptions (
    scope         text NOT NULL,
    subscriber_id text NOT NULL,
    subscription  jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, subscriber_id)
);

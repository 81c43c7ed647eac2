-- calibration-policy schema 3: the outbox, one row per event, written in the change's own transaction.

CREATE TABLE outbox (
    event_id    text PRIMARY KEY,       -- the event's id: the webhook-id of every delivery attempt
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    intent_id   text,                   -- the change's write-ahead intent, which holds the event until done
    record      jsonb NOT NULL          -- the event and its delivery log
);
CREATE INDEX outbox_order ON outbox (seq);
CREATE INDEX outbox_intent ON outbox (intent_id) WHERE intent_id IS NOT NULL;

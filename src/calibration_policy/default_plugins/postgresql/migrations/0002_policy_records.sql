-- calibration-policy schema 2: policy versions and proposals, shared by every machine like the runs.

CREATE TABLE policy_records (
    kind        text NOT NULL,          -- policy_versions | policy_proposals
    record_id   text NOT NULL,          -- the UTC stamp (numbered when two share one), as the file store names them
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    body        jsonb NOT NULL,
    PRIMARY KEY (kind, record_id)
);
CREATE INDEX policy_records_order ON policy_records (kind, seq);

-- Version 2: model artefacts, so that every process reads them without a shared disk. An
-- artefact is stored as chunks of at most 8 MiB, replaced whole in one transaction.
CREATE TABLE artefacts (
    path  TEXT COLLATE "C" NOT NULL,
    chunk INTEGER NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (path, chunk)
);

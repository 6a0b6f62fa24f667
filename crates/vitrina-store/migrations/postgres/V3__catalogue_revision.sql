-- Version 3: a number that changes with every statement that writes the catalogue, so that
-- the processes of a deployment re-read it only when it changed (a 100,000-product
-- catalogue takes ~0.1 s to read whole). A statement trigger counts every writer: the
-- store, `vitrina migrate`'s COPY, and an operator's own SQL.
CREATE TABLE catalogue_revision (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    revision BIGINT NOT NULL
);
INSERT INTO catalogue_revision (revision) VALUES (0);

CREATE FUNCTION vitrina_catalogue_changed() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalogue_revision SET revision = revision + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER products_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION vitrina_catalogue_changed();

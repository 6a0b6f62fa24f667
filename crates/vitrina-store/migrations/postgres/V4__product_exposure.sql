-- Version 4: per-product daily totals of served lists and attributed outcomes (how often a
-- product was shown, clicked, added to a cart, bought), written with the lists and outcomes
-- and pruned with them. The key `{product}/{day}` makes one product's days one key range.
CREATE TABLE product_exposure (
    key          TEXT COLLATE "C" PRIMARY KEY,
    product_id   TEXT COLLATE "C" NOT NULL,
    day          BIGINT NOT NULL,
    impressions  BIGINT NOT NULL,
    clicks       BIGINT NOT NULL,
    add_to_carts BIGINT NOT NULL,
    purchases    BIGINT NOT NULL,
    revenue      DOUBLE PRECISION NOT NULL
);
CREATE INDEX product_exposure_day ON product_exposure (day);

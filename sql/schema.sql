-- The four Django membership tables, as Django's migrations create them.
-- Used by the local stack, the demo and the tests. Idempotent.

CREATE TABLE IF NOT EXISTS membership_comrade (
    id                bigserial PRIMARY KEY,
    ssn               varchar(10) NOT NULL UNIQUE,
    name              varchar(255) NOT NULL,
    birthday          date NULL,
    gender            integer NOT NULL DEFAULT 0,
    housing_situation integer NOT NULL DEFAULT 0,
    date_joined       timestamp with time zone NOT NULL DEFAULT now(),
    reachable         boolean NOT NULL DEFAULT true,
    groupable         boolean NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS membership_contactinfo (
    comrade_id    bigint PRIMARY KEY
                  REFERENCES membership_comrade (id) DEFERRABLE INITIALLY DEFERRED,
    phone         varchar(30) NOT NULL DEFAULT '',
    email         varchar(254) NOT NULL DEFAULT '',
    facebook      varchar(255) NOT NULL DEFAULT '',
    foreign_phone varchar(30) NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS membership_simpleaddress (
    id             bigserial PRIMARY KEY,
    comrade_id     bigint NOT NULL UNIQUE
                   REFERENCES membership_comrade (id) DEFERRABLE INITIALLY DEFERRED,
    street_address varchar(255) NOT NULL DEFAULT '',
    postal_code    varchar(10) NOT NULL DEFAULT '',
    city           varchar(255) NOT NULL DEFAULT '',
    country        varchar(255) NOT NULL DEFAULT '',
    raw_address    text NOT NULL DEFAULT '',
    address_id     integer NULL
);

CREATE TABLE IF NOT EXISTS communication_email (
    id         bigserial PRIMARY KEY,
    comrade_id bigint NOT NULL
               REFERENCES membership_comrade (id) DEFERRABLE INITIALLY DEFERRED,
    email      varchar(254) NOT NULL,
    is_primary boolean NOT NULL DEFAULT false
);

CREATE INDEX IF NOT EXISTS communication_email_comrade_id
    ON communication_email (comrade_id);

-- Source setup for the membership CDC pipeline, to read and run by hand.
--
-- This does on the Postgres side what `cdc setup` does, for sites where the
-- pipeline's own role must not own the tables. Run it as a superuser (or the
-- tables' owner with CREATEROLE) connected to the Django database:
--
--     psql -v ON_ERROR_STOP=1 -d <django database> -f sql/setup.sql
--
-- Every step is idempotent: running the file again changes nothing. Run it
-- with psql's default autocommit (not inside BEGIN ... COMMIT, not with
-- `psql -1`): a replication slot cannot be created in a transaction that has
-- already written something.
--
-- Names used here are the defaults of the pipeline's settings: role
-- cdc_reader, publication cdc_members (CDC_PUBLICATION), slot cdc_members
-- (CDC_SLOT). Change them consistently if you change the settings.
--
-- Before you start: logical decoding needs wal_level = logical, which takes
-- a restart:
--     SHOW wal_level;                       -- must say 'logical'
--     ALTER SYSTEM SET wal_level = logical; -- then restart Postgres
-- (Cloud SQL: database flag cloudsql.logical_decoding = on;
--  Amazon RDS: parameter rds.logical_replication = 1.)


-- 1. The pipeline's role: as little as logical replication allows.
--    LOGIN        so `cdc run` can connect.
--    REPLICATION  so it may open a replication connection and stream from the
--                 slot. It does not make the role a superuser, but it DOES give
--                 read access to table data: a REPLICATION role can create its
--                 own logical slot with any output plugin (test_decoding, say)
--                 and read every change of EVERY table in the database it
--                 connects to (auth_user's password hashes included), whatever
--                 its SELECT grants and the publication say. With a pg_hba.conf
--                 line for the `replication` keyword it can also copy the whole
--                 cluster (pg_basebackup). Treat its password like read access
--                 to the whole database.
--    What limits it:
--      - pg_hba.conf: let cdc_reader in only from the reader's hosts, for the
--        Django database by name, and never for the `replication` keyword
--        (that keyword is physical replication of every database; `cdc run`
--        and `cdc backfill` use logical replication connections, which match
--        the database name);
--      - a dedicated database: logical decoding reads only the database the
--        slot is in, so keep other applications' tables out of the Django
--        database, and where possible keep in it no tables but the captured
--        ones (e.g. the four tables replicated into a database of their own,
--        which the pipeline reads);
--      - watch pg_replication_slots for slots the pipeline did not create
--        (`cdc status` shows its own).
--    (On Amazon RDS, REPLICATION cannot be set; use GRANT rds_replication TO cdc_reader.
--     rds_replication carries the same read access.)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_reader') THEN
        CREATE ROLE cdc_reader WITH LOGIN REPLICATION;
    ELSE
        ALTER ROLE cdc_reader WITH LOGIN REPLICATION;
    END IF;
END
$$;
-- Give it a password out of band, so it is not in this file or in shell history:
--     \password cdc_reader
-- and allow it in pg_hba.conf for the Django database only, from the reader's
-- hosts (this line covers its normal and its logical replication connections;
-- add none for the `replication` keyword), e.g.
--     host  <django database>  cdc_reader  10.0.4.17/32  scram-sha-256


-- 2. SELECT on the four captured tables, and on nothing else.
--    SELECT is what `cdc backfill` needs for its consistent snapshot; the
--    publication (step 3) decides which tables' changes the pipeline's slot
--    streams. Neither is a security boundary: see REPLICATION in step 1.
GRANT USAGE ON SCHEMA public TO cdc_reader;
GRANT SELECT ON public.membership_comrade,
                public.membership_contactinfo,
                public.membership_simpleaddress,
                public.communication_email
    TO cdc_reader;


-- 3. The publication: which tables' changes are decoded, and which kinds of
--    change (all four: insert, update, delete, truncate). Creating it needs
--    ownership of the tables, which is why a DBA runs this file.
--    If it exists already, any of the four tables missing from it are added;
--    other tables in it are left alone.
DO $$
DECLARE
    wanted text[] := ARRAY['membership_comrade', 'membership_contactinfo',
                           'membership_simpleaddress', 'communication_email'];
    missing text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'cdc_members') THEN
        CREATE PUBLICATION cdc_members
            FOR TABLE public.membership_comrade,
                      public.membership_contactinfo,
                      public.membership_simpleaddress,
                      public.communication_email
            WITH (publish = 'insert, update, delete, truncate');
    ELSE
        FOR missing IN
            SELECT t FROM unnest(wanted) AS t
            WHERE NOT EXISTS (
                SELECT 1 FROM pg_publication_tables p
                WHERE p.pubname = 'cdc_members'
                  AND p.schemaname = 'public' AND p.tablename = t)
        LOOP
            EXECUTE format('ALTER PUBLICATION cdc_members ADD TABLE public.%I', missing);
        END LOOP;
        ALTER PUBLICATION cdc_members SET (publish = 'insert, update, delete, truncate');
    END IF;
END
$$;


-- 4. Replica identity FULL: updates and deletes carry the whole old row in
--    the WAL, so change events have a complete `before`, and an update that
--    leaves a large (TOASTed) text value unchanged still carries its value.
--    Cost: more WAL per update and delete (the old row is written too).
--    Each ALTER takes a brief exclusive lock on its table; lock_timeout makes
--    it give up instead of queueing behind a long transaction (run it again).
SET lock_timeout = '10s';
ALTER TABLE public.membership_comrade       REPLICA IDENTITY FULL;
ALTER TABLE public.membership_contactinfo   REPLICA IDENTITY FULL;
ALTER TABLE public.membership_simpleaddress REPLICA IDENTITY FULL;
ALTER TABLE public.communication_email      REPLICA IDENTITY FULL;
RESET lock_timeout;


-- 5. The logical replication slot, decoded by the built-in pgoutput plugin.
--    From this moment Postgres keeps every WAL segment the slot has not
--    confirmed, so changes made while `cdc run` is down are not lost.
--    It must be created after the publication (step 3). Creating it waits
--    for transactions that are open right now to finish.
--    Changes committed before the slot existed are not streamed: run
--    `cdc backfill` once after the first `cdc run`.
SELECT 'created slot ' || slot_name || ' at ' || lsn
FROM pg_create_logical_replication_slot('cdc_members', 'pgoutput')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdc_members');


-- 6. Bound the WAL an abandoned slot can keep (PostgreSQL 13+).
--    With the default max_slot_wal_keep_size = -1 a stopped reader makes the
--    slot keep WAL without limit, until the source's disk is full and the
--    database stops accepting writes. Set a limit sized for the longest
--    reader outage you accept (WAL written per hour x hours), e.g.:
--
--        ALTER SYSTEM SET max_slot_wal_keep_size = '10GB';
--        SELECT pg_reload_conf();
--
--    A slot that falls further behind is invalidated (wal_status 'lost'):
--    `cdc run` stops and asks for `cdc setup` plus `cdc backfill`. Watch
--    `cdc status` (lag and WAL retained) to act before that happens.
SHOW max_slot_wal_keep_size;


-- 7. cdc writeback (only where members edit their details in the portal;
--    docs/writeback.md). `cdc setup` creates 7a and 7b when its role may.
--
-- 7a. The replication origin that tags the write-back's transactions: pgoutput
--     sends an Origin message before their changes, and the events name it
--     (`origin: "cdc_writeback"`). Origins are cluster-wide.
SELECT pg_replication_origin_create('cdc_writeback')
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = 'cdc_writeback');

-- 7b. One row per decided edit request, written in the same transaction as
--     the edit: a request is applied at most once, even when `cdc writeback`
--     dies between its commit and the status it writes to Firestore, and two
--     write-back processes never both apply one (the primary key). Not in the
--     publication: its rows are not streamed.
CREATE TABLE IF NOT EXISTS public.cdc_writeback_requests (
    request_id text PRIMARY KEY,
    comrade_id bigint NULL,
    uid        text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('applied', 'rejected', 'conflict')),
    reason     text NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
);

-- 7c. The write-back's role: it may change exactly the columns the portal's
--     fields map to, and nothing else. No DELETE anywhere, no other column.
--       SELECT          the member's rows, read and locked (SELECT ... FOR
--                       UPDATE also needs UPDATE on one column, below)
--       UPDATE (cols)   membership_comrade.name, membership_contactinfo.phone,
--                       membership_simpleaddress street_address, postal_code,
--                       city, communication_email.email
--       INSERT (cols)   the member's missing ContactInfo or SimpleAddress row,
--                       or a primary Email row when the member has none: the
--                       mapped columns, comrade_id, and is_primary for Email.
--                       The other columns take their defaults ('' in
--                       sql/schema.sql). Where the Django database has no
--                       column defaults, also grant INSERT (facebook,
--                       foreign_phone, email) on membership_contactinfo and
--                       INSERT (country, raw_address) on membership_simpleaddress.
--       USAGE           the id sequences of the two tables it may insert into
--       EXECUTE         the replication origin's session functions (granted
--                       like this on PostgreSQL 15; where a server refuses the
--                       grant, `cdc writeback` needs a superuser role)
--     Connect `cdc writeback` as this role (its own CDC_DATABASE_URL).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_writeback') THEN
        CREATE ROLE cdc_writeback WITH LOGIN;
    END IF;
END
$$;
-- \password cdc_writeback, and a pg_hba.conf line for it, as for cdc_reader.
GRANT USAGE ON SCHEMA public TO cdc_writeback;
GRANT SELECT ON public.membership_comrade, public.membership_contactinfo,
                public.membership_simpleaddress, public.communication_email
    TO cdc_writeback;
GRANT UPDATE (name) ON public.membership_comrade TO cdc_writeback;
GRANT UPDATE (phone), INSERT (comrade_id, phone)
    ON public.membership_contactinfo TO cdc_writeback;
GRANT UPDATE (street_address, postal_code, city),
      INSERT (comrade_id, street_address, postal_code, city)
    ON public.membership_simpleaddress TO cdc_writeback;
GRANT UPDATE (email), INSERT (comrade_id, email, is_primary)
    ON public.communication_email TO cdc_writeback;
GRANT USAGE ON SEQUENCE public.membership_simpleaddress_id_seq,
                        public.communication_email_id_seq TO cdc_writeback;
GRANT SELECT, INSERT ON public.cdc_writeback_requests TO cdc_writeback;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text),
                          pg_replication_origin_session_reset() TO cdc_writeback;

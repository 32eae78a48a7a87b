-- Remove the membership CDC pipeline from the source, to read and run by hand.
--
-- Does on the Postgres side what `cdc teardown` does, and optionally removes
-- the role created by sql/setup.sql. Run it as a superuser connected to the
-- Django database:
--
--     psql -v ON_ERROR_STOP=1 -d <django database> -f sql/teardown.sql
--
-- Every step is idempotent. Why tear down at all: a slot nobody reads from
-- keeps every WAL segment from its position on, until the source's disk is
-- full. If you retire the pipeline, drop its slot.
--
-- Dropping the slot loses its position. A later setup starts from "now" and
-- needs `cdc backfill` to catch up.


-- 1. Stop whoever streams from the slot (a running `cdc run`); an active
--    slot cannot be dropped. Stop the `cdc run` deployment first, or it
--    reconnects and fails with "slot does not exist".
SELECT pg_terminate_backend(active_pid)
FROM pg_replication_slots
WHERE slot_name = 'cdc_members' AND active_pid IS NOT NULL;

-- Give the walsender a moment to exit before dropping.
SELECT pg_sleep(1)
FROM pg_replication_slots
WHERE slot_name = 'cdc_members' AND active;


-- 2. Drop the slot: Postgres releases the WAL it kept.
SELECT 'dropped slot ' || slot_name, pg_drop_replication_slot(slot_name)
FROM pg_replication_slots
WHERE slot_name = 'cdc_members';


-- 3. Drop the publication (the tables and their data are untouched).
DROP PUBLICATION IF EXISTS cdc_members;


-- 4. Optional: put replica identity back to the default (primary key only).
--    Leave it FULL if anything else decodes these tables.
-- ALTER TABLE public.membership_comrade       REPLICA IDENTITY DEFAULT;
-- ALTER TABLE public.membership_contactinfo   REPLICA IDENTITY DEFAULT;
-- ALTER TABLE public.membership_simpleaddress REPLICA IDENTITY DEFAULT;
-- ALTER TABLE public.communication_email      REPLICA IDENTITY DEFAULT;


-- 5. Optional: remove the pipeline's role. A role is shared by all databases
--    of the server; revoke in every database where it was granted, then drop.
-- REVOKE SELECT ON public.membership_comrade, public.membership_contactinfo,
--                  public.membership_simpleaddress, public.communication_email
--     FROM cdc_reader;
-- REVOKE USAGE ON SCHEMA public FROM cdc_reader;
-- DROP ROLE IF EXISTS cdc_reader;

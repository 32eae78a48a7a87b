-- A handful of demo members for the local stack. Idempotent (skips existing ssn).
-- The kennitalas are made up.

INSERT INTO membership_comrade (ssn, name, birthday, gender, housing_situation, date_joined, reachable, groupable)
VALUES
    ('0101701259', 'Jón Jónsson',        '1970-01-01', 1, 1, '2016-10-01 12:00:00+00', true,  true),
    ('1203852169', 'Guðrún Sigurðardóttir','1985-03-12', 2, 2, '2017-01-15 09:30:00+00', true,  false),
    ('2307993349', 'Ari Þórsson',         '1999-07-23', 3, 6, '2021-05-05 18:45:00+00', false, true),
    ('0505050570', 'Sigga Dóra',          NULL,         0, 0, '2024-11-30 23:59:59+00', true,  true)
ON CONFLICT (ssn) DO NOTHING;

INSERT INTO membership_contactinfo (comrade_id, phone, email, facebook, foreign_phone)
SELECT id, '555-1234', lower(replace(name, ' ', '.')) || '@example.is', '', ''
FROM membership_comrade
ON CONFLICT (comrade_id) DO NOTHING;

INSERT INTO membership_simpleaddress (comrade_id, street_address, postal_code, city, country)
SELECT id, 'Laugavegur ' || id, '101', 'Reykjavík', 'Ísland'
FROM membership_comrade c
WHERE NOT EXISTS (SELECT 1 FROM membership_simpleaddress a WHERE a.comrade_id = c.id);

INSERT INTO communication_email (comrade_id, email, is_primary)
SELECT id, 'member' || id || '@example.is', true
FROM membership_comrade c
WHERE NOT EXISTS (SELECT 1 FROM communication_email e WHERE e.comrade_id = c.id);

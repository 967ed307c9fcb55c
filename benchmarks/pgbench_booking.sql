-- One random future booking per transaction, the same draw as wrk_booking.lua; the -D variables come from
-- benchmarks/loadgen.py (org count, per-org ranges, today's UTC midnight as epoch seconds, day window).
\set org random(1, :orgs)
\set provider :org + :orgs * random(0, :providers_per_org - 1)
\set contact :org + :orgs * random(0, :contacts_per_org - 1)
\set ts :base_epoch + 86400 * random(:day_min, :day_max) + 32400 + 1800 * random(0, 15)
SELECT status, appointment_id FROM book_appointment_atomic(:org, :contact, :provider, to_timestamp(:ts), 30);

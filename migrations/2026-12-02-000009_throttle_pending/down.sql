ALTER TABLE throttle_hits DROP COLUMN pending;

-- An attempt whose outcome is not known yet (a password being checked) is
-- pending: it makes parallel attempts wait, so they cannot outrun a limit,
-- but it is not a failure, so concurrency alone never refuses anyone. It
-- becomes a failure when its check fails, and is deleted when it succeeds
-- (a pending row left by a crash counts as a failure after a minute).
ALTER TABLE throttle_hits ADD COLUMN pending BOOLEAN NOT NULL DEFAULT false;

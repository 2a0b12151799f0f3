-- A password or address change drops the user's queued mails by these
-- keys; without an index each such change scans the whole outbox, which
-- anyone can grow through /api/password/forgot.
CREATE INDEX mail_outbox_reset_address ON mail_outbox (address) WHERE kind = 'reset';
CREATE INDEX mail_outbox_verify_user ON mail_outbox (user_id) WHERE kind = 'verify';

-- Security notices (ASVS 6.3.6): a mail to an account's owner after each
-- change to how the account is logged in to, queued in the change's own
-- transaction like every other mail. One kind per notice, named like the
-- audit event it follows.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN (
    'verify', 'reset',
    'password_changed', 'password_reset', 'email_changed', 'mfa_enabled',
    'mfa_disabled', 'recovery_codes_regenerated', 'recovery_code_used', 'mfa_reset'));

ALTER TABLE email_tokens DROP COLUMN requested_by;
ALTER TABLE mail_outbox DROP COLUMN requested_by;

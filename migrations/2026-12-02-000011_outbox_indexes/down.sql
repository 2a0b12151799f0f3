DROP INDEX mail_outbox_verify_user;
DROP INDEX mail_outbox_reset_address;

-- Which client network asked for a reset link (`a.b.c.0/24`, or an IPv6
-- /64; NULL for an operator's link or a confirmation link). A new reset
-- link supersedes only the earlier ones asked for from the same network,
-- so that requests from elsewhere (a flood aimed at someone else's
-- address) cannot void the link its owner is about to use.
ALTER TABLE mail_outbox ADD COLUMN requested_by TEXT;
ALTER TABLE email_tokens ADD COLUMN requested_by TEXT;

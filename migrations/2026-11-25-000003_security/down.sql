DROP TABLE throttle_hits;
DROP TABLE auth_events;

-- Per-user meta object (seed 004's MetaRequest), JSON text.
ALTER TABLE users ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';

-- A token whose secret was found in the wild: when it was reported, by
-- whom (github, gitleaks, ...) and where. Tokens stored before read as
-- never exposed.
ALTER TABLE tokengate_tokens ADD COLUMN exposed_at timestamptz;
ALTER TABLE tokengate_tokens ADD COLUMN exposure_source text NOT NULL DEFAULT '';
ALTER TABLE tokengate_tokens ADD COLUMN exposure_url text NOT NULL DEFAULT '';

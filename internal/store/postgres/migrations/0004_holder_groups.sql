-- The groups the identity provider gave each token's holder when they
-- claimed it. Tokens stored before they were recorded read as none.
ALTER TABLE tokengate_tokens ADD COLUMN holder_groups text[] NOT NULL DEFAULT '{}';

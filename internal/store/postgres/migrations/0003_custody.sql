-- Who holds each token's secret: the verified principal that claimed or
-- received it. Tokens stored before custody was recorded read as ''.
ALTER TABLE tokengate_tokens ADD COLUMN held_by text NOT NULL DEFAULT '';

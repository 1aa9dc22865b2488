-- Management requests (ask, approve, claim). The record is kept as JSON;
-- status and created_at are columns because lists filter and sort by them.
CREATE TABLE tokengate_requests (
	id         text        PRIMARY KEY,
	status     text        NOT NULL,
	created_at timestamptz NOT NULL,
	doc        jsonb       NOT NULL
);

CREATE INDEX tokengate_requests_status ON tokengate_requests (status, created_at);

-- A send's attachments, stored once with the send: JSON, data base64.
ALTER TABLE herald_sends ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';

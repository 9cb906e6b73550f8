-- SMS events (issue 14): segments and the cost a gateway reports, per event;
-- SMS totals per account and per campaign, apart from email's.
ALTER TABLE herald_events ADD COLUMN segments INTEGER;
ALTER TABLE herald_events ADD COLUMN cost TEXT;
ALTER TABLE herald_events ADD COLUMN currency TEXT;
ALTER TABLE herald_totals ADD COLUMN sms_processed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_totals ADD COLUMN sms_sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_totals ADD COLUMN sms_delivered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_totals ADD COLUMN sms_failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_totals ADD COLUMN sms_segments BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_totals ADD COLUMN sms_opted_out BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_campaigns ADD COLUMN sms_processed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_campaigns ADD COLUMN sms_sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_campaigns ADD COLUMN sms_delivered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_campaigns ADD COLUMN sms_failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_campaigns ADD COLUMN sms_segments BIGINT NOT NULL DEFAULT 0;

-- People's opens and clicks per campaign and hour (R-UI-1 charts), counted as events
-- are ingested, so a chart never scans the event log; like the totals, they survive
-- pruning. Hours are Unix milliseconds at the start of the UTC hour.
CREATE TABLE herald_campaign_hours (
    account  BIGINT NOT NULL,
    campaign BIGINT NOT NULL,
    hour     BIGINT NOT NULL,
    opens    BIGINT NOT NULL DEFAULT 0,
    clicks   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account, campaign, hour)
);

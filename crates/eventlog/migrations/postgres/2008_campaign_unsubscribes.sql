-- "Stop this kind of newsletter": an address unsubscribed from one campaign (a
-- campaign name groups the sends of one newsletter) gets no more mass mail of that
-- campaign; other mass mail still reaches it (R-MSG-6, the seed's landing page options).
CREATE TABLE herald_campaign_unsubscribes (
    account  BIGINT NOT NULL,
    email    TEXT   NOT NULL,   -- lower case
    campaign BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    PRIMARY KEY (account, email, campaign)
);

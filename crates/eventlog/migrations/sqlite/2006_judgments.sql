-- Why a bounce or block happened (herald_schedule::BounceReason: user_unknown, mailbox_full, …).
ALTER TABLE herald_events ADD COLUMN reason TEXT;
-- Opens by privacy proxies that fetch every image at delivery (Apple Mail Privacy
-- Protection), counted apart from people's opens and from bots' (R-EVT-7).
-- herald_events.bot holds 0 (a person), 1 (a bot) or 2 (such a prefetch).
ALTER TABLE herald_totals ADD COLUMN prefetch_opens BIGINT NOT NULL DEFAULT 0;

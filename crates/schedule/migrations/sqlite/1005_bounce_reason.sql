-- Why a bounced message bounced (herald_schedule::BounceReason), beside its class.
ALTER TABLE herald_outbox ADD COLUMN bounce_reason TEXT;

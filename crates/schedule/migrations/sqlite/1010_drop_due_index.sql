-- Claims read herald_outbox_ready (1009); nothing reads herald_outbox_due any
-- more, and every change of a row's state paid for keeping it.
DROP INDEX herald_outbox_due;

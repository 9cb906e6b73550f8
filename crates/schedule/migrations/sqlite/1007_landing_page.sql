-- An account's own unsubscribe landing page (the CRM's, as in the seed): Herald
-- records the click on the unsubscribe link and sends the person there with the
-- signed token, which the CRM hands back to record the choice.
ALTER TABLE herald_accounts ADD COLUMN landing_page TEXT;

-- SMS through the outbox (issue 14): a send is email or SMS. An SMS message is
-- a row of lane 'sms' whose recipient_email is the E.164 number and whose
-- merge_values hold the text merged at creation (SmsText, JSON).
ALTER TABLE herald_sends ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';

//! Bounce and complaint messages as receiving systems send them, for tests.

/// A Postfix-style DSN reporting a hard bounce of `rcpt`, sent to `verp`.
pub fn hard_bounce_dsn(verp: &str, rcpt: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.test\r\nTo: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n\r\n\
         --b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
         Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n\r\n--b1--\r\n"
    )
}

/// An ARF complaint about the message sent to `verp`.
pub fn complaint_arf(verp: &str, rcpt: &str) -> String {
    format!(
        "From: feedback@isp.example.test\r\nTo: {verp}\r\nSubject: Complaint\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r\n\r\n\
         --b2\r\nContent-Type: text/plain\r\n\r\nThis is a spam complaint.\r\n\r\n\
         --b2\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n\
         Original-Rcpt-To: {rcpt}\r\n\r\n--b2\r\nContent-Type: message/rfc822-headers\r\n\r\nTo: {rcpt}\r\nSubject: News\r\n\r\n--b2--\r\n"
    )
}

//! What giftlock offers an SMTP client, and what it lets through.
//!
//! Before login giftlock does not know the upstream (the account is known
//! only after AUTH), so its EHLO lists what giftlock itself implements:
//! PIPELINING (commands are read from the client's stream in order and
//! answered in order), CHUNKING (BDAT is passed through, or turned into
//! DATA for a server without it, see `data`), 8BITMIME, SMTPUTF8, SIZE,
//! ENHANCEDSTATUSCODES, and AUTH PLAIN LOGIN and STARTTLS where they are
//! allowed. An EHLO after login lists what both sides can: 8BITMIME,
//! SMTPUTF8 and the SIZE limit as the upstream has them. The upstream's
//! AUTH mechanisms are never shown.
//!
//! The allow-list twin: MAIL and RCPT parameters are forwarded only when
//! giftlock offers them (SIZE, BODY=7BIT/8BITMIME, SMTPUTF8, AUTH) and the
//! upstream can take them; others get a 555 from giftlock.

use std::borrow::Cow;

use smtp_proto::{
    EhloResponse, MailFrom, RcptTo, EXT_8BIT_MIME, EXT_SIZE, EXT_SMTP_UTF8, MAIL_BODY_7BIT,
    MAIL_BODY_8BITMIME, MAIL_SMTPUTF8,
};

use super::reply::ours;

/// What may be offered before login on this connection.
pub struct Offer {
    pub starttls: bool,
    pub auth: bool,
}

/// The EHLO reply before login.
pub fn before_login(host: &str, offer: &Offer) -> Vec<u8> {
    let mut caps = base();
    caps.extend(["8BITMIME", "SMTPUTF8", "SIZE"].map(String::from));
    if offer.auth {
        caps.push("AUTH PLAIN LOGIN".into());
    }
    if offer.starttls {
        caps.push("STARTTLS".into());
    }
    lines(host, &caps)
}

/// The EHLO reply after login: what giftlock and the upstream both can.
pub fn after_login(host: &str, upstream: &EhloResponse<String>) -> Vec<u8> {
    let mut caps = base();
    if upstream.capabilities & EXT_8BIT_MIME != 0 {
        caps.push("8BITMIME".into());
    }
    if upstream.capabilities & EXT_SMTP_UTF8 != 0 {
        caps.push("SMTPUTF8".into());
    }
    if upstream.capabilities & EXT_SIZE != 0 && upstream.size > 0 {
        caps.push(format!("SIZE {}", upstream.size));
    } else {
        caps.push("SIZE".into());
    }
    lines(host, &caps)
}

fn base() -> Vec<String> {
    ["PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES"]
        .map(String::from)
        .to_vec()
}

fn lines(host: &str, caps: &[String]) -> Vec<u8> {
    let mut out = format!("250-{host} giftlock\r\n");
    for (i, cap) in caps.iter().enumerate() {
        let sep = if i + 1 == caps.len() { ' ' } else { '-' };
        out.push_str(&format!("250{sep}{cap}\r\n"));
    }
    out.into_bytes()
}

/// Checks MAIL FROM's parameters; the error is giftlock's reply.
pub fn check_mail(
    from: &MailFrom<Cow<'_, str>>,
    upstream: &EhloResponse<String>,
) -> Result<(), Vec<u8>> {
    let offered = MailFrom {
        address: from.address.clone(),
        flags: from.flags & (MAIL_BODY_7BIT | MAIL_BODY_8BITMIME | MAIL_SMTPUTF8),
        size: from.size,
        auth: from.auth.clone(),
        ..MailFrom::default()
    };
    if &offered != from {
        return Err(ours(
            555,
            [5, 5, 4],
            "giftlock offers only the SIZE, BODY, SMTPUTF8 and AUTH parameters of MAIL",
        ));
    }
    if from.flags & MAIL_SMTPUTF8 != 0 && upstream.capabilities & EXT_SMTP_UTF8 == 0 {
        return Err(ours(
            555,
            [5, 6, 7],
            "giftlock: the upstream server does not support SMTPUTF8",
        ));
    }
    if from.flags & MAIL_BODY_8BITMIME != 0 && upstream.capabilities & EXT_8BIT_MIME == 0 {
        return Err(ours(
            555,
            [5, 6, 3],
            "giftlock: the upstream server does not support 8BITMIME",
        ));
    }
    Ok(())
}

/// Checks RCPT TO's parameters (giftlock offers none).
pub fn check_rcpt(to: &RcptTo<Cow<'_, str>>) -> Result<(), Vec<u8>> {
    let plain = RcptTo {
        address: to.address.clone(),
        orcpt: None,
        rrvs: 0,
        flags: 0,
    };
    if &plain != to {
        return Err(ours(
            555,
            [5, 5, 4],
            "giftlock offers no parameters of RCPT (no DSN)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::Request;

    fn upstream(caps: u32, size: usize) -> EhloResponse<String> {
        EhloResponse {
            capabilities: caps,
            size,
            auth_mechanisms: smtp_proto::AUTH_PLAIN,
            ..EhloResponse::new("up".to_string())
        }
    }

    fn mail(line: &str) -> MailFrom<Cow<'_, str>> {
        match Request::parse(&mut line.as_bytes().iter()).unwrap() {
            Request::Mail { from } => from,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ehlo_before_login_offers_auth_only_when_allowed() {
        let text = |o| String::from_utf8(before_login("gl", &o)).unwrap();
        let plain = text(Offer {
            starttls: true,
            auth: false,
        });
        assert!(plain.contains("250-STARTTLS") || plain.ends_with("250 STARTTLS\r\n"));
        assert!(!plain.contains("AUTH"), "{plain}");
        let secure = text(Offer {
            starttls: false,
            auth: true,
        });
        assert!(secure.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{secure}");
        assert!(secure.contains("250-CHUNKING\r\n") && secure.contains("250-PIPELINING\r\n"));
    }

    #[test]
    fn ehlo_after_login_hides_upstream_auth_and_follows_upstream_extensions() {
        let text = String::from_utf8(after_login("gl", &upstream(EXT_8BIT_MIME | EXT_SIZE, 1000)))
            .unwrap();
        assert!(
            !text.contains("AUTH") && !text.contains("SMTPUTF8"),
            "{text}"
        );
        assert!(
            text.contains("250-8BITMIME") && text.ends_with("250 SIZE 1000\r\n"),
            "{text}"
        );
    }

    #[test]
    fn mail_parameters_are_an_allow_list() {
        let full = upstream(EXT_8BIT_MIME | EXT_SMTP_UTF8, 0);
        assert!(check_mail(&mail("MAIL FROM:<a@b> SIZE=10 BODY=8BITMIME\r\n"), &full).is_ok());
        assert!(check_mail(&mail("MAIL FROM:<a@b> RET=HDRS\r\n"), &full).is_err());
        let bare = upstream(0, 0);
        let err = check_mail(&mail("MAIL FROM:<a@b> SMTPUTF8\r\n"), &bare).unwrap_err();
        assert!(String::from_utf8(err).unwrap().starts_with("555 5.6.7"));
        let rcpt = |l: &str| match Request::parse(&mut l.as_bytes().iter()).unwrap() {
            Request::Rcpt { to } => check_rcpt(&to).is_ok(),
            other => panic!("{other:?}"),
        };
        assert!(rcpt("RCPT TO:<c@d>\r\n"));
        assert!(!rcpt("RCPT TO:<c@d> NOTIFY=NEVER\r\n"));
    }
}

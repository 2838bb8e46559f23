//! The comet connection URL: `/ws/sesion={key}&myid={user}&devid={dev}&v={ver}&uuid={uuid}&api=js`,
//! parsed positionally as the original server did (the value after the first
//! `=`, then `&`-separated fields in order myid, devid, v, optional uuid).

/// A parsed connection request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub key: String,
    pub user_id: i64,
    pub dev: String,
    pub version: String,
    pub uuid: String,
}

/// Which required field a connection request lacks (with the original's HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no session or no user id field.
    Session,
    /// 406: no dev id.
    DevId,
    /// 418: no API version.
    Version,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Session => 401,
            Refusal::DevId => 406,
            Refusal::Version => 418,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Session => "session and user id are required",
            Refusal::DevId => "devid is required",
            Refusal::Version => "the API version (v) is required",
        }
    }
}

/// The value of a positional `name=value` field; `None` when the field is absent.
fn field(f: Option<&str>) -> Option<&str> {
    f.and_then(|f| f.split_once('=')).map(|(_, v)| v)
}

/// Parses the part after `/ws/` (a query string after `?` is accepted too).
/// As the seed says, every field is required but may be empty: an empty key
/// or a user id that is not a number (`myid=undefined` from the JS client)
/// means an anonymous connection.
pub fn parse(rest: &str) -> Result<ConnectRequest, Refusal> {
    let rest = rest.trim_start_matches('?');
    let mut fields = rest.split('&');
    let key = field(fields.next()).ok_or(Refusal::Session)?;
    let user = field(fields.next()).ok_or(Refusal::Session)?;
    let user_id: i64 = user.parse().ok().filter(|u: &i64| *u > 0).unwrap_or(0);
    let dev = field(fields.next())
        .filter(|d| huddle_domain::comet::valid_dev_id(d))
        .ok_or(Refusal::DevId)?;
    let version = field(fields.next())
        .filter(|v| !v.is_empty())
        .ok_or(Refusal::Version)?;
    let uuid = field(fields.next())
        .unwrap_or("")
        .chars()
        .take(64)
        .collect();
    Ok(ConnectRequest {
        key: key.to_owned(),
        user_id,
        dev: dev.to_owned(),
        version: version.to_owned(),
        uuid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_parsing_and_refusals() {
        let r = parse("sesion=abc&myid=7&devid=15&v=4.09&uuid=u1&api=js").expect("ok");
        assert_eq!(
            (
                r.key.as_str(),
                r.user_id,
                r.dev.as_str(),
                r.version.as_str(),
                r.uuid.as_str()
            ),
            ("abc", 7, "15", "4.09", "u1")
        );
        // Present but empty or not a number: anonymous, as the JS client connects.
        assert_eq!(
            parse("sesion=&myid=7&devid=1&v=1").expect("empty key").key,
            ""
        );
        assert_eq!(
            parse("sesion=a&myid=&devid=1&v=1")
                .expect("empty id")
                .user_id,
            0
        );
        assert_eq!(
            parse("sesion=undefined&myid=undefined&devid=1&v=1")
                .expect("JS anonymous")
                .user_id,
            0
        );
        assert_eq!(parse(""), Err(Refusal::Session));
        assert_eq!(parse("sesion=a"), Err(Refusal::Session));
        assert_eq!(parse("sesion=a&myid=1"), Err(Refusal::DevId));
        assert_eq!(
            parse("sesion=a&myid=1&devid=bad dev&v=1"),
            Err(Refusal::DevId)
        );
        assert_eq!(parse("sesion=a&myid=1&devid=1"), Err(Refusal::Version));
        assert_eq!(
            parse("sesion=a&myid=0&devid=1&v=1")
                .expect("anonymous")
                .user_id,
            0
        );
    }
}

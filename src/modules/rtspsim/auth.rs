//! RTSP authentication: Basic (RFC 7617) and Digest MD5 (RFC 2617 / RFC 7616) challenges and verification.
//!
//! Nonces are stateless: 16 random bytes followed by a keyed MD5 tag over them, so any nonce
//! this server instance issued verifies without a table. Nonces never expire because common
//! clients (retina, many NVRs) keep one nonce for the whole session and give up on a second
//! 401 instead of re-authenticating; `nc` replay is not tracked for the same reason. This is
//! a camera simulator on a test network, not a bank: the aim is to exercise clients' auth.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use rand::RngCore;
use std::fmt;
use thiserror::Error;

/// User name and password a client must present. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &"<redacted>").field("password", &"<redacted>").finish()
    }
}

/// Which schemes a 401 offers and the server accepts. Clients prefer Digest when both are
/// offered, so `Basic` alone is how tests (and old clients) get Basic exercised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthSchemes {
    #[default]
    BasicAndDigest,
    Basic,
    Digest,
}

/// Why a request was not authorized. Never carries the presented secrets.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("no Authorization header")]
    Missing,
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("nonce was not issued by this server")]
    UnknownNonce,
    #[error("realm does not match")]
    WrongRealm,
    #[error("unsupported digest algorithm or qop")]
    UnsupportedDigest,
    #[error("wrong user name or password")]
    BadCredentials,
}

impl AuthError {
    /// The scheme label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::UnsupportedScheme => "unsupported-scheme",
            AuthError::Malformed(_) => "malformed",
            AuthError::UnknownNonce => "unknown-nonce",
            AuthError::WrongRealm => "wrong-realm",
            AuthError::UnsupportedDigest => "unsupported-digest",
            AuthError::BadCredentials => "bad-credentials",
        }
    }
}

/// Issues challenges and checks `Authorization` headers against one set of credentials.
pub struct Authenticator {
    credentials: Credentials,
    schemes: AuthSchemes,
    realm: String,
    /// Key of the nonce tag; random per server instance so nonces do not outlive it.
    secret: [u8; 16],
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("schemes", &self.schemes).field("realm", &self.realm).finish_non_exhaustive()
    }
}

pub const REALM: &str = "Vela rtspsim";

impl Authenticator {
    pub fn new(credentials: Credentials, schemes: AuthSchemes) -> Self {
        let mut secret = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut secret);
        Self::with_secret(credentials, schemes, secret)
    }

    /// Deterministic constructor for tests.
    pub fn with_secret(credentials: Credentials, schemes: AuthSchemes, secret: [u8; 16]) -> Self {
        Authenticator { credentials, schemes, realm: REALM.to_owned(), secret }
    }

    /// `WWW-Authenticate` values for a 401, Digest first (each must go on its own header line).
    pub fn challenges(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        if matches!(self.schemes, AuthSchemes::Digest | AuthSchemes::BasicAndDigest) {
            let nonce = self.new_nonce();
            out.push(format!("Digest realm=\"{}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"", self.realm));
        }
        if matches!(self.schemes, AuthSchemes::Basic | AuthSchemes::BasicAndDigest) {
            out.push(format!("Basic realm=\"{}\"", self.realm));
        }
        out
    }

    /// Checks one request's `Authorization` header. `method` is the request method as sent
    /// (Digest's HA2 covers it).
    pub fn check(&self, method: &str, authorization: Option<&str>) -> Result<(), AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?.trim();
        let (scheme, rest) = header.split_once(char::is_whitespace).unwrap_or((header, ""));
        let (basic, digest) = match self.schemes {
            AuthSchemes::BasicAndDigest => (true, true),
            AuthSchemes::Basic => (true, false),
            AuthSchemes::Digest => (false, true),
        };
        if basic && scheme.eq_ignore_ascii_case("basic") {
            self.check_basic(rest.trim())
        } else if digest && scheme.eq_ignore_ascii_case("digest") {
            self.check_digest(method, rest.trim())
        } else {
            Err(AuthError::UnsupportedScheme)
        }
    }

    fn check_basic(&self, token: &str) -> Result<(), AuthError> {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(token).map_err(|_| AuthError::Malformed("basic token is not base64"))?;
        let colon = decoded.iter().position(|&b| b == b':').ok_or(AuthError::Malformed("basic token has no ':'"))?;
        let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
        // Evaluate both comparisons so timing does not reveal which one failed.
        let user_ok = ct_eq(user, self.credentials.username.as_bytes());
        let pass_ok = ct_eq(pass, self.credentials.password.as_bytes());
        if user_ok & pass_ok {
            Ok(())
        } else {
            Err(AuthError::BadCredentials)
        }
    }

    fn check_digest(&self, method: &str, params: &str) -> Result<(), AuthError> {
        let p = DigestParams::parse(params)?;
        if p.realm != self.realm {
            return Err(AuthError::WrongRealm);
        }
        if !p.algorithm.is_empty() && !p.algorithm.eq_ignore_ascii_case("MD5") {
            return Err(AuthError::UnsupportedDigest);
        }
        if !self.nonce_is_ours(&p.nonce) {
            return Err(AuthError::UnknownNonce);
        }
        let ha1 = md5_hex(format!("{}:{}:{}", p.username, self.realm, self.credentials.password).as_bytes());
        let ha2 = md5_hex(format!("{method}:{}", p.uri).as_bytes());
        let expected = match p.qop.as_str() {
            // RFC 2069 compatibility: some cameras' clients never send qop.
            "" => md5_hex(format!("{ha1}:{}:{ha2}", p.nonce).as_bytes()),
            q if q.eq_ignore_ascii_case("auth") => {
                if p.nc.is_empty() || p.cnonce.is_empty() {
                    return Err(AuthError::Malformed("qop=auth without nc or cnonce"));
                }
                md5_hex(format!("{ha1}:{}:{}:{}:{}:{ha2}", p.nonce, p.nc, p.cnonce, q).as_bytes())
            }
            _ => return Err(AuthError::UnsupportedDigest),
        };
        let user_ok = ct_eq(p.username.as_bytes(), self.credentials.username.as_bytes());
        let resp_ok = ct_eq(p.response.to_ascii_lowercase().as_bytes(), expected.as_bytes());
        if user_ok & resp_ok {
            Ok(())
        } else {
            Err(AuthError::BadCredentials)
        }
    }

    fn new_nonce(&self) -> String {
        let mut random = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut random);
        self.nonce_from(random)
    }

    fn nonce_from(&self, random: [u8; 16]) -> String {
        format!("{}{}", hex(&random), hex(&self.nonce_tag(&random)))
    }

    fn nonce_tag(&self, random: &[u8]) -> [u8; 8] {
        let mut h = Md5::new();
        h.update(self.secret);
        h.update(random);
        h.update(self.secret);
        let d = h.finalize();
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&d[..8]);
        tag
    }

    fn nonce_is_ours(&self, nonce: &str) -> bool {
        if nonce.len() != 48 {
            return false;
        }
        let (Some(random), Some(tag)) = (unhex(&nonce[..32]), unhex(&nonce[32..])) else { return false };
        ct_eq(&self.nonce_tag(&random), &tag)
    }
}

/// The fields of a Digest `Authorization` header that verification needs.
#[derive(Debug, Default, PartialEq, Eq)]
struct DigestParams {
    username: String,
    realm: String,
    nonce: String,
    uri: String,
    response: String,
    algorithm: String,
    qop: String,
    nc: String,
    cnonce: String,
}

impl DigestParams {
    fn parse(s: &str) -> Result<Self, AuthError> {
        let mut p = DigestParams::default();
        for (k, v) in parse_auth_params(s)? {
            let slot = match k.to_ascii_lowercase().as_str() {
                "username" => &mut p.username,
                "realm" => &mut p.realm,
                "nonce" => &mut p.nonce,
                "uri" => &mut p.uri,
                "response" => &mut p.response,
                "algorithm" => &mut p.algorithm,
                "qop" => &mut p.qop,
                "nc" => &mut p.nc,
                "cnonce" => &mut p.cnonce,
                _ => continue,
            };
            *slot = v;
        }
        if p.username.is_empty() || p.nonce.is_empty() || p.response.is_empty() {
            return Err(AuthError::Malformed("digest without username, nonce or response"));
        }
        Ok(p)
    }
}

/// Parses `key=value, key="quoted \"value\"", …` (RFC 7235 auth-param list).
fn parse_auth_params(s: &str) -> Result<Vec<(String, String)>, AuthError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(AuthError::Malformed("auth parameter without '='"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or(AuthError::Malformed("unterminated quoted string"))?),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(AuthError::Malformed("unterminated quoted string")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// Constant-time equality for equal lengths (the length itself is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

fn md5_hex(data: &[u8]) -> String {
    hex(&Md5::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(schemes: AuthSchemes) -> Authenticator {
        Authenticator::with_secret(Credentials { username: "Mufasa".into(), password: "Circle Of Life".into() }, schemes, [7; 16])
    }

    /// A qop=auth response as a client computes it (user "Mufasa", our realm, nc 00000001, cnonce "abc").
    fn digest_response(pass: &str, nonce: &str, method: &str, uri: &str) -> String {
        let ha1 = md5_hex(format!("Mufasa:{REALM}:{pass}").as_bytes());
        let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
        md5_hex(format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}").as_bytes())
    }

    #[test]
    fn rfc2617_example_vector() {
        // RFC 2617 section 3.5 (realm and nonce from the RFC; response independently known).
        let ha1 = md5_hex(b"Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = md5_hex(b"GET:/dir/index.html");
        let r = md5_hex(format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}").as_bytes());
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn challenges_per_scheme() {
        let both = auth(AuthSchemes::BasicAndDigest).challenges();
        assert_eq!(both.len(), 2);
        assert!(both[0].starts_with("Digest realm=\"Vela rtspsim\", nonce=\""), "{}", both[0]);
        assert!(both[0].contains("qop=\"auth\""));
        assert_eq!(both[1], "Basic realm=\"Vela rtspsim\"");
        assert_eq!(auth(AuthSchemes::Basic).challenges().len(), 1);
        assert!(auth(AuthSchemes::Digest).challenges()[0].starts_with("Digest "));
    }

    #[test]
    fn basic() {
        let a = auth(AuthSchemes::Basic);
        let good = base64::engine::general_purpose::STANDARD.encode("Mufasa:Circle Of Life");
        assert_eq!(a.check("DESCRIBE", Some(&format!("Basic {good}"))), Ok(()));
        assert_eq!(a.check("DESCRIBE", Some(&format!("basic  {good} "))), Ok(()));
        let bad = base64::engine::general_purpose::STANDARD.encode("Mufasa:circle of life");
        assert_eq!(a.check("DESCRIBE", Some(&format!("Basic {bad}"))), Err(AuthError::BadCredentials));
        let colon_in_password = base64::engine::general_purpose::STANDARD.encode("Mufasa:Circle:Of Life");
        assert_eq!(a.check("DESCRIBE", Some(&format!("Basic {colon_in_password}"))), Err(AuthError::BadCredentials));
        assert_eq!(a.check("DESCRIBE", None), Err(AuthError::Missing));
        assert!(matches!(a.check("DESCRIBE", Some("Basic !!!")), Err(AuthError::Malformed(_))));
        assert_eq!(a.check("DESCRIBE", Some("Bearer x")), Err(AuthError::UnsupportedScheme));
        // A scheme that was not offered is refused even with the right password.
        let digest_only = auth(AuthSchemes::Digest);
        assert_eq!(digest_only.check("DESCRIBE", Some(&format!("Basic {good}"))), Err(AuthError::UnsupportedScheme));
    }

    #[test]
    fn digest_with_qop() {
        let a = auth(AuthSchemes::Digest);
        let nonce = a.nonce_from([1; 16]);
        let uri = "rtsp://127.0.0.1:8554/media/vtest.mkv";
        let resp = digest_response("Circle Of Life", &nonce, "DESCRIBE", uri);
        let h = format!(
            "Digest username=\"Mufasa\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"abc\""
        );
        assert_eq!(a.check("DESCRIBE", Some(&h)), Ok(()));
        // Same header for another method fails: HA2 covers the method.
        assert_eq!(a.check("PLAY", Some(&h)), Err(AuthError::BadCredentials));
        let wrong = digest_response("wrong", &nonce, "DESCRIBE", uri);
        assert_eq!(a.check("DESCRIBE", Some(&h.replace(&resp, &wrong))), Err(AuthError::BadCredentials));
    }

    #[test]
    fn digest_without_qop_rfc2069() {
        let a = auth(AuthSchemes::Digest);
        let nonce = a.nonce_from([2; 16]);
        let ha1 = md5_hex(format!("Mufasa:{REALM}:Circle Of Life").as_bytes());
        let ha2 = md5_hex(b"SETUP:rtsp://h/media/a.mkv/trackID=0");
        let resp = md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes());
        let h = format!(
            "Digest username=\"Mufasa\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"rtsp://h/media/a.mkv/trackID=0\", response=\"{}\"",
            resp.to_uppercase()
        );
        assert_eq!(a.check("SETUP", Some(&h)), Ok(()));
    }

    #[test]
    fn digest_rejects_foreign_nonce_and_realm() {
        let a = auth(AuthSchemes::Digest);
        let other =
            Authenticator::with_secret(Credentials { username: "Mufasa".into(), password: "x".into() }, AuthSchemes::Digest, [8; 16]);
        let nonce = other.nonce_from([1; 16]);
        let resp = digest_response("Circle Of Life", &nonce, "DESCRIBE", "u");
        let h = format!(
            "Digest username=\"Mufasa\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"u\", response=\"{resp}\", qop=auth, nc=00000001, cnonce=abc"
        );
        assert_eq!(a.check("DESCRIBE", Some(&h)), Err(AuthError::UnknownNonce));
        let mine = a.nonce_from([1; 16]);
        let h2 = h.replace(&nonce, &mine).replace(REALM, "elsewhere");
        assert_eq!(a.check("DESCRIBE", Some(&h2)), Err(AuthError::WrongRealm));
        assert_eq!(
            a.check("DESCRIBE", Some("Digest username=\"a\"")),
            Err(AuthError::Malformed("digest without username, nonce or response"))
        );
    }

    #[test]
    fn auth_param_parsing() {
        let p = parse_auth_params(r#"a=1, b="x, \"y\"",c = "z" ,d=e"#).unwrap();
        let want: Vec<(String, String)> =
            [("a", "1"), ("b", "x, \"y\""), ("c", "z"), ("d", "e")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(p, want);
        assert!(parse_auth_params("a=\"open").is_err());
        assert!(parse_auth_params("novalue").is_err());
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn debug_redacts_credentials() {
        let c = Credentials { username: "root".into(), password: "hunter2".into() };
        let s = format!("{c:?} {:?}", auth(AuthSchemes::Basic));
        assert!(!s.contains("hunter2") && !s.contains("root") && !s.contains("Circle"), "{s}");
    }
}

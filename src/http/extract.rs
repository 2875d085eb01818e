//! Request extractors: JSON objects with per-field validation, bearer
//! tokens of each kind, and the client's address for the security log.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest};
use ipnet::IpNet;
use serde_json::{Map, Value};

use super::problem::{ApiError, ErrorCode};
use crate::auth::tokens::PendingClaims;
use crate::auth::{ClientInfo, FieldError};
use crate::service::Authenticator;
use crate::service::Session;

/// The largest body any endpoint reads.
pub const BODY_LIMIT: usize = 16 * 1024;
const _: () = assert!(
    BODY_LIMIT.is_multiple_of(1024),
    "body_limit_in_kib would round"
);

/// [`BODY_LIMIT`] as error details and the API description state it.
pub fn body_limit_in_kib() -> String {
    format!("{} KiB", BODY_LIMIT / 1024)
}
const USER_AGENT_MAX: usize = 256;

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A request body that is a JSON object, read as fields.
#[derive(Debug)]
pub struct JsonObject(Map<String, Value>);

impl JsonObject {
    pub fn into_fields(self) -> Fields {
        Fields {
            object: self.0,
            errors: Vec::new(),
        }
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(content_type) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(mime) = content_type.to_str().unwrap_or("").parse::<mime::Mime>() else {
        return false;
    };
    mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}

impl FromRequest for JsonObject {
    type Error = ApiError;
    type Future = LocalFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = bytes
                .await
                .map_err(|error| match error.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::new(ErrorCode::PayloadTooLarge),
                    _ => ApiError::new(ErrorCode::BadRequest)
                        .with_detail("The request body could not be read."),
                })?;
            if body.is_empty() {
                return Err(ApiError::new(ErrorCode::BadRequest)
                    .with_detail("A JSON object body is required."));
            }
            if !json {
                return Err(ApiError::new(ErrorCode::UnsupportedMediaType));
            }
            let value: Value = serde_json::from_slice(&body).map_err(|error| {
                ApiError::new(ErrorCode::BadRequest)
                    .with_detail(format!("The body is not valid JSON: {error}."))
            })?;
            match value {
                Value::Object(object) => Ok(Self(object)),
                _ => Err(ApiError::validation(vec![FieldError::new(
                    "body",
                    "must be a JSON object",
                )])),
            }
        })
    }
}

/// Collects one error per invalid field, then fails once with all of them.
#[derive(Debug)]
pub struct Fields {
    object: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    /// A required string field, parsed into a domain type.
    pub fn parse<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let outcome = match self.object.get(name) {
            None | Some(Value::Null) => Err("is required".to_owned()),
            Some(Value::String(raw)) => parse(raw),
            Some(_) => Err("must be a string".to_owned()),
        };
        outcome
            .map_err(|message| self.errors.push(FieldError::new(name, message)))
            .ok()
    }

    /// A required, non-empty string field.
    pub fn text(&mut self, name: &str) -> Option<String> {
        self.parse(name, |raw| {
            if raw.is_empty() {
                Err("must not be empty".to_owned())
            } else {
                Ok(raw.to_owned())
            }
        })
    }

    /// An optional string field: absent or null is None.
    pub fn optional_text(&mut self, name: &str) -> Option<String> {
        match self.object.get(name) {
            None | Some(Value::Null) => None,
            Some(_) => self.parse(name, |raw| Ok(raw.to_owned())),
        }
    }

    /// The parsed values, or 422 naming every invalid field.
    pub fn finish<T>(self, parsed: Option<T>) -> Result<T, ApiError> {
        if !self.errors.is_empty() {
            return Err(ApiError::validation(self.errors));
        }
        parsed.ok_or_else(|| ApiError::new(ErrorCode::Internal))
    }
}

/// The token from the one `Authorization: Bearer` header.
fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    parse_authorization(req.headers().get_all(header::AUTHORIZATION))
}

/// The token of the `Authorization` header values: exactly one, scheme
/// `Bearer` in any case, a token68 token.
pub fn parse_authorization<'a>(
    mut values: impl Iterator<Item = &'a header::HeaderValue>,
) -> Result<&'a str, ApiError> {
    let value = values.next().ok_or_else(ApiError::missing_token)?;
    if values.next().is_some() {
        return Err(ApiError::new(ErrorCode::BadRequest)
            .with_detail("Send exactly one Authorization header."));
    }
    let invalid = || ApiError::new(ErrorCode::InvalidToken);
    let bytes = value.as_bytes();
    let space = bytes.iter().position(|b| *b == b' ').ok_or_else(invalid)?;
    let (scheme, rest) = bytes.split_at(space);
    let token = rest.trim_ascii();
    // One pass over the token (it is checked on every authenticated
    // request): token68 bytes only, so it is ASCII and a `str` as it is.
    if !scheme.eq_ignore_ascii_case(b"bearer")
        || token.is_empty()
        || !token.iter().all(|b| TOKEN68[usize::from(*b)])
    {
        return Err(invalid());
    }
    std::str::from_utf8(token).map_err(|_| invalid())
}

/// The bytes RFC 9110's token68 allows (`Authorization: Bearer <token68>`).
static TOKEN68: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        allowed[byte] = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        byte += 1;
    }
    allowed
};

fn authenticator(req: &HttpRequest) -> Result<&Authenticator, ApiError> {
    req.app_data::<web::Data<Authenticator>>()
        .map(|data| data.get_ref())
        .ok_or_else(|| ApiError::new(ErrorCode::Internal))
}

/// A signed, unexpired pending-2FA token (whether it is spent is checked by
/// the step that uses it).
#[derive(Debug)]
pub struct PendingToken(pub PendingClaims);

impl FromRequest for PendingToken {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let token = bearer_token(req)?;
            Ok(Self(authenticator(req)?.check_pending_token(token)?))
        })())
    }
}

/// A live session, from a full access token.
#[derive(Debug)]
pub struct AccessSession(pub std::sync::Arc<Session>);

impl FromRequest for AccessSession {
    type Error = ApiError;
    type Future = LocalFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = bearer_token(req)
            .map(str::to_owned)
            .and_then(|token| Ok((token, authenticator(req)?.clone())));
        Box::pin(async move {
            let (token, auth) = checked?;
            Ok(Self(auth.authenticate(&token).await?))
        })
    }
}

/// Proxies whose `X-Forwarded-For` is believed (`OTPGATE_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    /// Whether `ip` (canonical) is a listed proxy, whether the list names
    /// it as IPv4 or in IPv4-mapped IPv6 form.
    fn trusts(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
            IpAddr::V6(_) => None,
        };
        self.0
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)))
    }

    /// The client's address: the socket peer, unless the peer is a trusted
    /// proxy; then the right-most `X-Forwarded-For` hop that is not one
    /// (read from the raw header bytes: a header that is not UTF-8 must not
    /// make the client look like the proxy). A hop that does not parse
    /// makes the client unknown (None), never the proxy. IPv4-mapped IPv6
    /// addresses (what a dual-stack listener sees) count as IPv4.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: &[&[u8]]) -> Option<IpAddr> {
        let mut client = peer?.to_canonical();
        if !self.trusts(client) {
            return Some(client);
        }
        let hops: Vec<&[u8]> = forwarded_for
            .iter()
            .flat_map(|value| value.split(|byte| *byte == b','))
            .collect();
        for hop in hops.into_iter().rev() {
            client = parse_hop(hop)?.to_canonical();
            if !self.trusts(client) {
                break;
            }
        }
        Some(client)
    }
}

/// One `X-Forwarded-For` hop: an address, or an address with a port
/// (`192.0.2.1:443`, `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<std::net::SocketAddr>().map(|addr| addr.ip()))
        .ok()
}

/// Who is calling, for throttling and the security log.
#[derive(Debug)]
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|agent| agent.chars().take(USER_AGENT_MAX).collect());
        let forwarded_for: Vec<&[u8]> = req
            .headers()
            .get_all(header::X_FORWARDED_FOR)
            .map(|value| value.as_bytes())
            .collect();
        let peer = req.peer_addr().map(|addr| addr.ip().to_canonical());
        let proxies = req.app_data::<web::Data<TrustedProxies>>();
        let ip = match proxies {
            Some(proxies) => proxies.client_ip(peer, &forwarded_for),
            None => peer,
        };
        // A listed proxy is never exempt, even on loopback.
        let local = peer.is_some_and(|peer| {
            peer.is_loopback() && !proxies.is_some_and(|proxies| proxies.trusts(peer))
        });
        ready(Ok(Self(ClientInfo {
            ip,
            user_agent,
            local,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies(list.iter().map(|net| net.parse().unwrap()).collect())
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let none = proxies(&[]);
        assert_eq!(
            none.client_ip(ip("10.0.0.5"), &[b"1.2.3.4"]),
            ip("10.0.0.5")
        );
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_ip(ip("192.0.2.9"), &[b"1.2.3.4"]),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client forged the first entry; the proxy appended the real one.
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &[b"6.6.6.6, 203.0.113.7", b"10.1.1.1"]),
            ip("203.0.113.7")
        );
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &[]), ip("10.0.0.5"));
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &[b"garbage"]), None);
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &[b"unknown"]), None);
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &[b"1.2.3.4, "]), None);
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &[b"203.0.113.7:4711"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &[b"[2001:db8::7]:443"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            trusted.client_ip(ip("10.0.0.5"), &[b"203.0.113.7\xff"]),
            None
        );
        assert_eq!(
            trusted.client_ip(ip("::ffff:10.0.0.5"), &[b"::ffff:203.0.113.7"]),
            ip("203.0.113.7")
        );
    }
}

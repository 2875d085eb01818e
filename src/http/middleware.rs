//! Cross-cutting behaviour of every response.

use std::any::Any;
use std::cell::Cell;
use std::net::Shutdown;
use std::rc::{Rc, Weak};
use std::task::{Poll, ready};
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::rt::time::{Instant, sleep_until};
use actix_web::{Error, HttpMessage, ResponseError, web};
use futures_util::StreamExt;
use futures_util::stream::poll_fn;
use tracing::Instrument;
use uuid::Uuid;

use super::extract::BODY_LIMIT;
use super::problem::{ApiError, ErrorCode, PROBLEM_JSON};
use crate::lifecycle::Lifecycle;

/// Headers every response carries, errors included.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        // Set here rather than by actix-cors, whose order varies per worker.
        .add((
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            "WWW-Authenticate, Retry-After, X-Request-Id",
        ))
}

/// One log line per request (method, path, status, latency, request id);
/// the id is echoed in `X-Request-Id`. Never the body, query or headers.
/// Also counts the request as in flight while it runs, and in the metrics.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = Uuid::new_v4();
    let method = req.method().clone();
    let path = req.path().to_owned();
    // The template, not the path: metric labels must stay few.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let lifecycle = req.app_data::<web::Data<Lifecycle>>().cloned();
    let in_flight = lifecycle
        .as_ref()
        .map(|lifecycle| lifecycle.request_started());
    let span = tracing::info_span!("request", %request_id);
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let latency = started.elapsed();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    span.in_scope(|| tracing::info!(%method, %path, status, latency_ms, "request"));
    crate::metrics::record_request(&method, &route, status, latency);
    drop(in_flight);
    result.map(|mut response| {
        if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static("x-request-id"), value);
        }
        response
    })
}

/// Serves HEAD wherever GET is served (RFC 9110 9.3.2): the request is
/// routed as GET, and actix's encoder, which remembers it was HEAD, sends
/// the headers (`Content-Length` included) without the body.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}

/// Refuses a declared body over the limit before anything reads it, on
/// every route (chunked bodies are cut off by the JSON extractor).
pub async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        let response = ApiError::new(ErrorCode::PayloadTooLarge).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Turns any error response not already problem+json (from actix itself or
/// a middleware such as CORS) into one, so no client ever parses HTML or an
/// empty body.
pub async fn problem_fallback(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, Error> {
    let response = match next.call(req).await {
        Ok(response) => response,
        Err(error) => {
            let status = error.as_response_error().status_code();
            return Err(actix_web::error::InternalError::from_response(
                "",
                ApiError::new(ErrorCode::for_status(status)).error_response(),
            )
            .into());
        }
    };
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if status.as_u16() < 400 || is_problem {
        return Ok(response.map_into_left_body());
    }
    let (request, original) = response.into_parts();
    let mut replacement = ApiError::new(ErrorCode::for_status(status)).error_response();
    // Keep what the original said about methods and CORS.
    for name in [header::ALLOW, header::VARY] {
        if let Some(value) = original.headers().get(&name) {
            replacement.headers_mut().insert(name, value.clone());
        }
    }
    Ok(ServiceResponse::new(request, replacement).map_into_right_body())
}

/// How long a connection may wait on its client: from its accept or its
/// last answer until the next request's head is read, and from a head
/// until its body is read. Actix bounds only the first request's head
/// (`client_request_timeout`) and an idle keep-alive, not a later head nor
/// a body, however slowly they trickle in.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// When a connection's client must have sent what the server waits for
/// (`None` while the server is the one working). Shared by the
/// connection's watchdog and its requests, all on one worker thread.
pub struct ClientDeadline {
    /// A duplicate of the connection's socket, to shut it down.
    socket: socket2::Socket,
    deadline: Cell<Option<Instant>>,
}

impl ClientDeadline {
    fn wait_on_client(&self) {
        self.deadline.set(Some(Instant::now() + CLIENT_TIMEOUT));
    }

    fn stop_waiting(&self) {
        self.deadline.set(None);
    }
}

/// For `HttpServer::on_connect`: gives a new connection its deadline and
/// the watchdog that cuts it off once that passes.
pub fn watch_connection(connection: &dyn Any, data: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let socket = match socket2::SockRef::from(stream).try_clone() {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, "cannot watch a connection for slow clients");
            return;
        }
    };
    let watch = Rc::new(ClientDeadline {
        socket,
        deadline: Cell::new(None),
    });
    watch.wait_on_client();
    actix_web::rt::spawn(cut_off_when_late(Rc::downgrade(&watch)));
    data.insert(watch);
}

/// Shuts the connection down once its deadline passes (the dispatcher then
/// reads the end of the stream and drops it); ends with the connection.
async fn cut_off_when_late(watch: Weak<ClientDeadline>) {
    loop {
        let Some(connection) = watch.upgrade() else {
            return;
        };
        let now = Instant::now();
        let wake_at = match connection.deadline.get() {
            Some(deadline) if deadline <= now => {
                tracing::info!("slow client cut off");
                // Fails only if the client is already gone.
                let _ = connection.socket.shutdown(Shutdown::Both);
                return;
            }
            Some(deadline) => deadline,
            // Any deadline set from now on is at least this far away.
            None => now + CLIENT_TIMEOUT,
        };
        drop(connection);
        sleep_until(wake_at).await;
    }
}

/// Moves the connection's deadline along a request: once its head is in,
/// its body (if any) must follow within [`CLIENT_TIMEOUT`]; once the body
/// is read the server is working; once answered, the next request must
/// come within it.
pub async fn bound_client_waits(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let Some(watch) = req.conn_data::<Rc<ClientDeadline>>().cloned() else {
        return next.call(req).await;
    };
    match req.take_payload() {
        Payload::None => watch.stop_waiting(),
        mut payload => {
            watch.wait_on_client();
            let reader = watch.clone();
            let timed = poll_fn(move |cx| {
                let chunk = ready!(payload.poll_next_unpin(cx));
                if chunk.is_none() {
                    reader.stop_waiting();
                }
                Poll::Ready(chunk)
            });
            req.set_payload(Payload::Stream {
                payload: Box::pin(timed),
            });
        }
    }
    let result = next.call(req).await;
    watch.wait_on_client();
    result
}

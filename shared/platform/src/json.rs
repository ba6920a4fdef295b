//! JSON request bodies whose every failure is a `problem+json` naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The default body limit of the API.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body of at most [`BODY_LIMIT`] bytes. Syntax errors are 400, type errors and
/// unknown fields are 422; each names the offending field by its path
/// (`person.languages[0]`).
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(&req)?;
        let bytes = read_body(req, BODY_LIMIT).await?;
        parse(&bytes).map(Json)
    }
}

/// A JSON body that may be absent (an empty body, or `null`, reads as `T::default()`),
/// for transitions whose body is optional.
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if has_type {
            require_json_content_type(&req)?;
        }
        let bytes = read_body(req, BODY_LIMIT).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        parse(&bytes).map(OptionalJson)
    }
}

pub(crate) fn require_json_content_type(req: &Request) -> Result<(), ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type("application/json"))
    }
}

/// Reads a whole body, refusing it with 413 past `limit` bytes.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit).await.map_err(|err| {
        let too_large = std::error::Error::source(&err).is_some_and(|s| s.to_string().contains("length limit"))
            || err.to_string().contains("length limit");
        if too_large {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::malformed("body", "the body could not be read")
        }
    })
}

/// Deserialises a JSON object, naming the failing field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => {}
        Some(_) if serde_json::from_slice::<serde_json::Value>(bytes).is_ok() => {
            return Err(ApiError::invalid_field("body", "expected a JSON object"));
        }
        Some(_) => {}
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::malformed("body", format!("malformed JSON: {message}"))
            }
            serde_json::error::Category::Io => ApiError::malformed("body", message),
            serde_json::error::Category::Data => {
                let field = field_of(&path, &message);
                ApiError::invalid_field(&field, clean_message(&message))
            }
        }
    })
}

/// Serde reports an unknown or missing field at its parent's path; put the field's own
/// name at the end so the client sees `person.colour`, not `person`.
fn field_of(path: &str, message: &str) -> String {
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let parent = if path == "." { "" } else { path };
    match named {
        // serde_path_to_error already ends the path of an unknown field with its name.
        Some(name) if parent == name || parent.ends_with(&format!(".{name}")) => parent.to_string(),
        Some(name) if parent.is_empty() => name.to_string(),
        Some(name) => format!("{parent}.{name}"),
        None if parent.is_empty() => "body".to_string(),
        None => parent.to_string(),
    }
}

/// Drops serde's " at line 1 column 42" suffix, which means nothing to an API client.
fn clean_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        languages: Vec<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        person: Option<Inner>,
        note: Option<String>,
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let e = parse::<Outer>(br#"{"colour":"blue"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.errors[0].field, "colour");
        let e = parse::<Outer>(br#"{"person":{"languages":[],"age":3}}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "person.age");
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path() {
        let e = parse::<Outer>(br#"{"person":{"languages":["fr", 3]}}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "person.languages[1]");
        assert!(!e.errors[0].message.contains("line"));
        let e = parse::<Outer>(br#"{"note": 12}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "note");
    }

    #[test]
    fn malformed_json_is_a_400_about_the_body() {
        let e = parse::<Outer>(br#"{"note": "#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.errors[0].field, "body");
        let e = parse::<Outer>(b"[1,2]").unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Optional {
        comment: Option<String>,
    }

    async fn optional(body: &'static str) -> Result<Optional, ApiError> {
        let req = axum::http::Request::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        OptionalJson::<Optional>::from_request(req, &()).await.map(|OptionalJson(v)| v)
    }

    #[tokio::test]
    async fn an_optional_body_may_be_empty_or_null() {
        assert_eq!(optional("").await.unwrap().comment, None);
        assert_eq!(optional(" null ").await.unwrap().comment, None);
        assert_eq!(optional(r#"{"comment": "x"}"#).await.unwrap().comment.as_deref(), Some("x"));
        assert_eq!(optional("[]").await.unwrap_err().status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse::<Outer>(&bytes);
        }
    }
}

/// Query parameters whose failures are `422`s naming the parameter.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(Query).map_err(|err| {
            let path = err.path().to_string();
            let message = err.into_inner().to_string();
            ApiError::invalid_field(&field_of(&path, &message), clean_message(&message))
        })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

//! One module per endpoint family. A handler extracts, makes one engine call, and shapes the response.

pub mod authorize;
pub mod metadata;
pub mod ops;
pub mod register;
pub mod token;
pub mod verify;

use actix_web::HttpResponseBuilder;
use actix_web::http::header::{self, HeaderValue};

/// `Cache-Control: no-store` and `Pragma: no-cache`, for every response that carries a credential or decision.
pub fn no_store(mut res: HttpResponseBuilder) -> HttpResponseBuilder {
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    res
}

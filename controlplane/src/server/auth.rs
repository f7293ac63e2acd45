//! The bearer-token check every service (but reflection) runs before a call: shared with the
//! dataplane's diagnostics service, so it lives in `aegis_api::auth`.

pub use aegis_api::auth::TokenCheck;
